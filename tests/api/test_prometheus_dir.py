"""Several API processes (uvicorn's spawned workers) share one folder of Prometheus values per run of
their supervisor, and a new run removes the folders of runs that are gone."""

import multiprocessing
import os
from pathlib import Path

# Not imported at the top: a spawned child imports this module before it knows its parent, and the
# module under test must first be imported after that, as app.main is in a uvicorn worker.
VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def _report_folder(answers: "multiprocessing.Queue[str]") -> None:
    import app.api.prometheus_dir  # noqa: F401  (chooses the folder on import)

    answers.put(os.environ[VARIABLE])


def test_a_spawned_api_process_shares_its_supervisors_folder_and_removes_dead_runs(tmp_path, monkeypatch):
    monkeypatch.delenv(VARIABLE, raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the children's temp folder
    root = tmp_path / f"epochly-metrics-{os.getuid()}"
    dead_run = root / "999999999-12345"  # no such pid
    dead_run.mkdir(parents=True)
    (dead_run / "counter_42.db").write_bytes(b"old")
    context = multiprocessing.get_context("spawn")
    answers = context.Queue()
    folders = []
    for _ in range(2):  # two workers of this supervisor (the test process)
        child = context.Process(target=_report_folder, args=(answers,))
        child.start()
        folders.append(answers.get(timeout=60))
        child.join(60)
    from app.api.prometheus_dir import process_identity

    ours = process_identity(os.getpid())
    assert ours is not None
    assert folders == [str(root / ours)] * 2
    assert Path(folders[0]).is_dir()
    assert not dead_run.exists()


def test_a_lone_process_keeps_its_values_in_memory(monkeypatch):
    monkeypatch.delenv(VARIABLE, raising=False)
    import app.api.prometheus_dir as prometheus_dir

    prometheus_dir._choose()
    assert VARIABLE not in os.environ
