"""Start a real API process and real workers for a benchmark, on either back end."""
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("EPOCHLY_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("EPOCHLY_BENCH_REDIS", "redis://127.0.0.1:6379/12")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def postgres_database(admin_url: str = PG_ADMIN_URL) -> Iterator[str]:
    """A fresh, empty database on the server `admin_url` points at; dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    name = f"epochly_{uuid.uuid4().hex[:10]}"
    # No pooled connection to go stale: a fault test may restart the server in between.
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@dataclass(frozen=True)
class LiveService:
    url: str
    key: str
    api_pid: int = 0
    database_url: str = ""

    def api_rss_bytes(self) -> int:
        return _status_kib(self.api_pid, "VmRSS") * 1024

    def api_peak_rss_bytes(self) -> int:
        return _status_kib(self.api_pid, "VmHWM") * 1024

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@contextmanager
def service(backend: str = "postgres-redis", workers: int = 1, env: dict[str, str] | None = None) -> Iterator[LiveService]:
    """A live API, the scheduler and `workers` Celery worker processes, and an API key for it;
    `env` adds settings (say RATE_LIMIT_PER_MIN) for all of them."""
    from app.admin import create_api_key
    from app.serve import api_command, scheduler_command, worker_command
    from app.settings import Settings

    with tempfile.TemporaryDirectory(prefix="epochly-bench-") as tmp, _database(backend) as database_url:
        env = {
            **os.environ,
            "DATA_DIR": f"{tmp}/var",
            "DATABASE_URL": database_url,
            "BROKER_URL": REDIS_URL if backend != "embedded" else "",
            **(env or {}),
        }
        if backend != "embedded":
            import redis

            redis.Redis.from_url(REDIS_URL).flushdb()
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        logs = Path(tmp)
        processes = [subprocess.Popen(api_command("127.0.0.1", port), cwd=ROOT, env=env, stdout=(logs / "api.log").open("wb"), stderr=subprocess.STDOUT)]
        try:
            _wait(lambda: httpx.get(f"{url}/health", timeout=2).status_code == 200, processes[0], "API")
            scheduler_log = logs / "scheduler.log"
            processes.append(subprocess.Popen(scheduler_command(), cwd=ROOT, env=env, stdout=scheduler_log.open("wb"), stderr=subprocess.STDOUT))
            _wait(lambda: b"scheduler ready" in scheduler_log.read_bytes(), processes[-1], "scheduler")
            for index in range(workers):
                log_path = logs / f"worker{index}.log"
                processes.append(subprocess.Popen(worker_command(f"bench{index}"), cwd=ROOT, env=env, stdout=log_path.open("wb"), stderr=subprocess.STDOUT))
                _wait(lambda p=log_path: b" ready." in p.read_bytes(), processes[-1], "worker")
            settings = Settings(data_dir=Path(env["DATA_DIR"]), database_url=database_url, broker_url=env["BROKER_URL"])
            key = create_api_key("bench", settings)
            yield LiveService(url=url, key=key, api_pid=processes[0].pid, database_url=settings.resolved_database_url)
        finally:
            if os.environ.get("EPOCHLY_BENCH_SHOW_LOGS"):
                for log_file in sorted(logs.glob("*.log")):
                    print(f"--- {log_file.name}\n{log_file.read_text()[-4000:]}", file=sys.stderr)
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()


@contextmanager
def _database(backend: str) -> Iterator[str]:
    if backend == "embedded":
        yield ""
    else:
        with postgres_database() as url:
            yield url


def _wait(ready, process: subprocess.Popen, what: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"{what} exited early with code {process.returncode}")
        try:
            if ready():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    sys.exit(f"{what} not ready after {timeout_s}s")


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)
