"""`make run`'s console (quiet by default, everything at LOG_LEVEL=debug), and `epochly-api`, the Docker image's API command."""

import stat
import subprocess
import sys
from pathlib import Path

import httpx

from app.admin import LOCAL_KEY_FILE
from app.serve import TF_CPP_LINE, banner, child_env, worker_command
from app.settings import Settings
from tests.conftest import embedded_settings, settings_env, wait_for_http
from tests.integration.conftest import free_port

TF_STARTUP = [
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
    b"I0000 00:00:1795646106.548806   24133 port.cc:153] oneDNN custom operations are on.\n",
    b"E0000 00:00:1795645930.696158   19330 cuda_platform.cc:52] failed call to cuInit: INTERNAL\n",
]
OURS = [b"INFO:     Uvicorn running on http://127.0.0.1:8000\n", b"[2026-11-25 12:00:00: INFO/MainProcess] worker1@vm ready.\n"]


def test_only_tensorflows_cpp_lines_are_dropped():
    assert all(TF_CPP_LINE.match(line) for line in TF_STARTUP)
    assert not any(TF_CPP_LINE.match(line) for line in OURS)


def test_below_debug_tensorflow_and_celerys_root_warning_are_quiet(monkeypatch):
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    monkeypatch.setenv("PYTHONWARNINGS", "error::DeprecationWarning")
    env = child_env("info")
    assert env["TF_CPP_MIN_LOG_LEVEL"] == "3"
    assert env["PYTHONWARNINGS"] == "error::DeprecationWarning,ignore:You're running the worker with superuser privileges"
    assert "--quiet" in worker_command(log_level="info")


def test_debug_leaves_everything_in(monkeypatch):
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    monkeypatch.delenv("PYTHONWARNINGS", raising=False)
    env = child_env("debug")
    assert "TF_CPP_MIN_LOG_LEVEL" not in env and "PYTHONWARNINGS" not in env
    assert "--quiet" not in worker_command(log_level="debug")
    assert "--loglevel=DEBUG" in worker_command(log_level="debug")


def test_banner_names_the_url_docs_dashboard_and_key_file(tmp_path):
    text = banner("http://127.0.0.1:8000", tmp_path / "local-api-key", None)
    for part in (
        "http://127.0.0.1:8000",
        "http://127.0.0.1:8000/docs",
        "http://127.0.0.1:8000/ui",
        str(tmp_path / "local-api-key"),
    ):
        assert part in text
    assert len(text.splitlines()) <= 6


def start_epochly_api(settings: Settings, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    env = {**settings_env(settings), "HOST": "127.0.0.1", "PORT": str(port)}
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-c", "from app.serve import serve_api; serve_api()"], env=env, stdout=log, stderr=log
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(timeout=20)


def test_epochly_api_prints_and_saves_a_first_key_once_then_serves(tmp_path):
    """The Docker image's API command: on a service with no keys, a key in its log and in DATA_DIR (mode 600)."""
    settings = embedded_settings(tmp_path / "var")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    first = start_epochly_api(settings, port, tmp_path / "first.log")
    try:
        wait_for_http(f"{url}/health/live", first, tmp_path / "first.log", 60)
        key_file = settings.data_dir / LOCAL_KEY_FILE
        key = key_file.read_text().strip()
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert f"  {key}\n" in (tmp_path / "first.log").read_text()
        assert httpx.get(f"{url}/v1/jobs", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    finally:
        stop(first)
    again = start_epochly_api(settings, port, tmp_path / "again.log")
    try:
        wait_for_http(f"{url}/health/live", again, tmp_path / "again.log", 60)
        assert "No API key existed" not in (tmp_path / "again.log").read_text()
        assert key_file.read_text().strip() == key
    finally:
        stop(again)
