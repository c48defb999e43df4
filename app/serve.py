"""`make run`: migrate, then run the API, one worker and the scheduler, restarting the worker or the
scheduler if it dies; Ctrl-C stops them all."""

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

from app.admin import LOCAL_KEY_FILE, LOCAL_OWNER, ensure_local_key
from app.migrate import upgrade_to_head
from app.settings import get_settings

RESTART_DELAY_S = 2.0
JSON_LOG_CONFIG = Path(__file__).with_name("json_logging.json")
# Warnings no user of `make run` can act on: a local machine often runs as root, and Celery says so
# on every start. PYTHONWARNINGS matches the start of the message.
QUIET_WARNINGS = ("ignore:You're running the worker with superuser privileges",)
# TensorFlow 2.16+ logs its start-up lines (oneDNN, CUDA probes) through absl before anything can
# configure it, so TF_CPP_MIN_LOG_LEVEL alone no longer hides them: below debug they are dropped
# from the roles' output here. Only this C++ line shape matches; Python's output passes untouched.
TF_CPP_LINE = re.compile(
    rb"^(?:[IWE]\d{4} [\d:.]+\s+\d+ [\w./-]+:\d+\] |WARNING: All log messages before absl::InitializeLog\(\))"
)


def worker_command(concurrency_name: str = "worker1", log_level: str = "info") -> list[str]:
    # The banner (twenty lines of configuration) only at debug; " ready." is logged at info either way.
    banner = [] if log_level == "debug" else ["--quiet"]
    return [
        sys.executable,
        "-m",
        "celery",
        *banner,
        "-A",
        "worker.celery_app",
        "worker",
        "--pool=solo",
        "--without-mingle",
        "--without-gossip",
        f"--loglevel={log_level.upper()}",
        "-n",
        f"{concurrency_name}@%h",
    ]


def scheduler_command() -> list[str]:
    return [sys.executable, "-m", "app.scheduler"]


def api_command(host: str, port: int, log_level: str = "info", log_format: str = "text") -> list[str]:
    # JSON from uvicorn's first line on, the supervisor's of several processes (WEB_CONCURRENCY) included.
    json_logs = ["--log-config", str(JSON_LOG_CONFIG)] if log_format == "json" else []
    return [
        *(sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory"),
        *("--host", host, "--port", str(port), "--log-level", log_level, *json_logs),
    ]


def child_env(log_level: str) -> dict[str, str]:
    """The roles' environment. Below debug, TensorFlow's C++ logging (oneDNN and CUDA probes, printed
    by the worker and the API's spec checker) and the warnings above stay out of the console; a
    value the user set explicitly wins."""
    env = dict(os.environ)
    if log_level != "debug":
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        env["PYTHONWARNINGS"] = ",".join(filter(None, [env.get("PYTHONWARNINGS", ""), *QUIET_WARNINGS]))
    return env


def _forward(source: IO[bytes], target: IO[bytes]) -> None:
    for line in source:
        if not TF_CPP_LINE.match(line):
            target.write(line)
            target.flush()


def start(command: list[str], env: dict[str, str], log_level: str) -> subprocess.Popen[bytes]:
    if log_level == "debug":
        return subprocess.Popen(command, env=env)
    # Unbuffered: a pipe would otherwise hold a role's prints back until its buffer fills.
    env = {**env, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for source, target in ((process.stdout, sys.stdout.buffer), (process.stderr, sys.stderr.buffer)):
        assert source is not None
        threading.Thread(target=_forward, args=(source, target), daemon=True).start()
    return process


def banner(url: str, key_file: Path, new_key: str | None) -> str:
    key = f"created now and saved in {key_file}" if new_key else f"saved in {key_file}"
    lines = [
        f"Epochly is running on {url}",
        f"  API docs   {url}/docs",
        f"  dashboard  {url}/ui",
        f"  API key    {key}",
        f"             export EPOCHLY_API_KEY=$(cat {key_file})",
        "Ctrl-C stops it; LOG_LEVEL=debug shows every log line.",
    ]
    return "\n".join(lines)


def first_key_notice(key: str, key_file: Path) -> str:
    return "\n".join(
        [
            f"No API key existed: this one was created for owner {LOCAL_OWNER!r} and saved in {key_file} (mode 600).",
            f"  {key}",
            "More keys: epochly keys create --owner NAME",
        ]
    )


def serve_api() -> None:
    """`epochly-api`, the API role alone (the Docker image's default command): migrate, create the first
    key as `make run` does, then become uvicorn. Exec, not a child: uvicorn stays the process that
    `docker stop` signals."""
    settings = get_settings()
    settings.prepare_data_dir()
    upgrade_to_head(settings.resolved_database_url)
    key = ensure_local_key(settings)
    if key:
        print(first_key_notice(key, (settings.data_dir / LOCAL_KEY_FILE).resolve()), flush=True)
    command = api_command(settings.host, settings.port, settings.log_level, settings.log_format)
    os.execv(command[0], command)


def main() -> None:
    settings = get_settings()
    settings.prepare_data_dir()
    upgrade_to_head(settings.resolved_database_url)
    key = ensure_local_key(settings)
    key_file = (settings.data_dir / LOCAL_KEY_FILE).resolve()
    env = child_env(settings.log_level)
    api = start(api_command(settings.host, settings.port, settings.log_level, settings.log_format), env, settings.log_level)
    # Roles that may die and come back without the service going down.
    restartable = {"worker": worker_command(log_level=settings.log_level), "scheduler": scheduler_command()}
    running = {role: start(command, env, settings.log_level) for role, command in restartable.items()}
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    print(banner(f"http://{settings.host}:{settings.port}", key_file, key), flush=True)
    try:
        while not stopping:
            if api.poll() is not None:
                print(f"the API exited with code {api.returncode}; stopping", file=sys.stderr)
                break
            for role, process in running.items():
                if process.poll() is not None:
                    print(f"the {role} exited with code {process.returncode}; restarting it", file=sys.stderr)
                    time.sleep(RESTART_DELAY_S)
                    running[role] = start(restartable[role], env, settings.log_level)
            time.sleep(0.5)
    finally:
        processes = [api, *running.values()]
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    main()
