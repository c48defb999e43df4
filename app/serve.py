"""`make run`: migrate, then run the API, one worker and the scheduler, restarting the worker or the
scheduler if it dies; Ctrl-C stops them all."""

import os
import signal
import subprocess
import sys
import time

from app.admin import LOCAL_KEY_FILE, ensure_local_key
from app.migrate import upgrade_to_head
from app.settings import get_settings

RESTART_DELAY_S = 2.0


def worker_command(concurrency_name: str = "worker1") -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "worker.celery_app",
        "worker",
        "--pool=solo",
        "--without-mingle",
        "--without-gossip",
        "--loglevel=INFO",
        "-n",
        f"{concurrency_name}@%h",
    ]


def scheduler_command() -> list[str]:
    return [sys.executable, "-m", "app.scheduler"]


def api_command(host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory", "--host", host, "--port", str(port)]


def main() -> None:
    settings = get_settings()
    settings.prepare_data_dir()
    upgrade_to_head(settings.resolved_database_url)
    key = ensure_local_key(settings)
    key_file = settings.data_dir / LOCAL_KEY_FILE
    if key:
        print(f"Created your local API key (saved in {key_file}):\n  export EPOCHLY_API_KEY={key}", flush=True)
    elif key_file.exists():
        print(f"Your local API key is in {key_file}: export EPOCHLY_API_KEY=$(cat {key_file})", flush=True)
    env = dict(os.environ)
    api = subprocess.Popen(api_command(settings.host, settings.port), env=env)
    # Roles that may die and come back without the service going down.
    restartable = {"worker": worker_command(), "scheduler": scheduler_command()}
    running = {role: subprocess.Popen(command, env=env) for role, command in restartable.items()}
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    print(f"Epochly on http://{settings.host}:{settings.port} (docs at /docs); Ctrl-C stops it", flush=True)
    try:
        while not stopping:
            if api.poll() is not None:
                print(f"the API exited with code {api.returncode}; stopping", file=sys.stderr)
                break
            for role, process in running.items():
                if process.poll() is not None:
                    print(f"the {role} exited with code {process.returncode}; restarting it", file=sys.stderr)
                    time.sleep(RESTART_DELAY_S)
                    running[role] = subprocess.Popen(restartable[role], env=env)
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
