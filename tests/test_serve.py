"""`make run`'s console: quiet by default, everything at LOG_LEVEL=debug."""

from app.serve import TF_CPP_LINE, banner, child_env, worker_command

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
