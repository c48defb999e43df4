"""Private PostgreSQL and Redis servers that a fault test or the chaos soak may stop and start at will,
on loopback ports of their own, so the machine's shared servers (and other tests) are never disturbed."""
import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.harness import free_port


def find_binary(binary: str) -> str | None:
    # Debian puts the PostgreSQL server tools outside PATH, one folder per major version.
    return shutil.which(binary) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{binary}"))), None)


def require_binary(binary: str) -> str:
    path = find_binary(binary)
    if path is None:
        raise RuntimeError(f"{binary} is not installed (a private server needs it: apt-get install redis-server postgresql)")
    return path


class PrivateRedis:
    """A Redis with no persistence at all: a restart forgets every queued message, the worst case for the broker."""

    # tests/integration/servers.py swaps this for a pytest skip/fail; the benchmarks want a plain error.
    require: Callable[[str], str] = staticmethod(require_binary)

    def __init__(self, workdir: Path) -> None:
        self.binary = self.require("redis-server")
        self.port = free_port()
        self.workdir = workdir
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        _wait_port(self.port)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


class PrivatePostgres:
    """A throwaway cluster run as the `postgres` user (PostgreSQL refuses to run as root)."""

    require: Callable[[str], str] = staticmethod(require_binary)

    def __init__(self) -> None:
        self.initdb = self.require("initdb")
        self.pg_ctl = self.require("pg_ctl")
        self.port = free_port()
        self.datadir = Path(tempfile.mkdtemp(prefix="epochly-pg-"))
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        shutil.chown(self.datadir, "postgres", "postgres")
        self._as_postgres([self.initdb, "-D", str(self.datadir), "-U", "postgres", "--auth=trust", "-E", "UTF8"])

    def _as_postgres(self, command: list[str]) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run(prefix + command, check=True, capture_output=True)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.datadir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._as_postgres([self.pg_ctl, "-D", str(self.datadir), "-o", options, "-l", str(self.datadir / "log"), "-w", "start"])

    def stop(self) -> None:
        """Fast shutdown: sessions are cut off, as in a real restart."""
        self._as_postgres([self.pg_ctl, "-D", str(self.datadir), "-m", "fast", "-w", "stop"])

    def remove(self) -> None:
        # Already stopped (a fault test may end with the server down) is fine: the files go either way.
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.datadir, ignore_errors=True)


def _wait_port(port: int, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


class MotoS3:
    """An S3-compatible server (moto's server mode) in a process of its own, on a loopback port, with
    one bucket; `pause()` / `resume()` make the store unreachable for a while, its objects kept."""

    def __init__(self, bucket: str = "epochly") -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.bucket = bucket
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        moto_server = Path(sys.executable).with_name("moto_server")
        self.process = subprocess.Popen(
            [str(moto_server), "-H", "127.0.0.1", "-p", str(self.port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _wait_port(self.port)
        import boto3

        boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1", **self.credentials_kwargs()).create_bucket(Bucket=self.bucket)

    @staticmethod
    def credentials_kwargs() -> dict[str, str]:
        return {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}

    def env(self) -> dict[str, str]:
        """The standard AWS_* variables a process needs to reach this server, and nothing else."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            self.process.wait(timeout=30)
