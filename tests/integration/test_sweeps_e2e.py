"""Sweeps through real workers: every grid point trained once and ranked, the event stream, pruning
by Optuna's median pruner from the rows already written, importances, and a sweep that finishes
with exactly its trials while its worker is killed and the API and scheduler are restarted."""

import os
import signal
import threading
import time

import pytest

from app.specs import TUTORIAL_COMPILE, TUTORIAL_LAYERS
from tests.conftest import start_scheduler
from tests.integration.conftest import ApiServer
from tests.integration.sse import read_events
from tests.integration.test_faults import cluster

FINISHED = ("succeeded", "failed", "cancelled")


def sweep_body(dataset_id: str, **overrides) -> dict:
    return {
        "dataset_id": dataset_id,
        "name": "tutorial grid",
        "model": {"layers": TUTORIAL_LAYERS},
        "compile": TUTORIAL_COMPILE,
        "fit": {"epochs": 4, "batch_size": 32, "validation_split": 0.2, "seed": 0, "normalize": "minmax"},
        "search": {
            "compile.optimizer.learning_rate": {"type": "choice", "values": [0.001, 0.02]},
            "model.layers[0].units": {"type": "choice", "values": [4, 16]},
        },
        "sampler": "grid",
        "objective": {"metric": "val_accuracy", "direction": "maximize"},
        "parallel": 2,
        **overrides,
    }


def wait_for_sweep(http, sweep_id: str, timeout_s: float = 240) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        sweep = http.get(f"/v1/sweeps/{sweep_id}").json()
        if sweep["status"] in FINISHED:
            return sweep
        time.sleep(0.2)
    raise TimeoutError(f"sweep {sweep_id} still {sweep['status']} after {timeout_s}s: {sweep['counts']}")


def best_of(http, job_id: str, metric: str) -> float:
    return max(row["logs"][metric] for row in http.get(f"/v1/jobs/{job_id}/metrics").json()["epochs"])


def test_a_grid_trains_every_point_once_ranks_them_and_streams_its_trials(live):
    dataset = live.post("/v1/datasets/examples/side-effects").json()
    response = live.post("/v1/sweeps", json=sweep_body(dataset["id"]))
    assert response.status_code == 202, response.text
    sweep_id = response.json()["id"]
    events = []

    def follow() -> None:
        with live.stream("GET", f"/v1/sweeps/{sweep_id}/events", timeout=240) as stream:
            events.extend(read_events(stream))

    follower = threading.Thread(target=follow)
    follower.start()
    sweep = wait_for_sweep(live, sweep_id)
    follower.join(timeout=60)

    assert sweep["status"] == "succeeded" and sweep["counts"]["succeeded"] == 4 and sweep["trials_created"] == 4
    board = sweep["leaderboard"]
    points = {(t["params"]["compile.optimizer.learning_rate"], t["params"]["model.layers[0].units"]) for t in board}
    assert points == {(0.001, 4), (0.001, 16), (0.02, 4), (0.02, 16)}  # the whole grid, each point once
    assert sorted(t["trial"] for t in board) == [1, 2, 3, 4]
    for trial in board:  # the objective is the best val_accuracy of the trial's own epoch rows
        assert trial["objective"] == pytest.approx(best_of(live, trial["job_id"], "val_accuracy"))
        assert trial["epochs_completed"] == 4 and trial["stop_reason"] == "completed"
    assert [t["objective"] for t in board] == sorted((t["objective"] for t in board), reverse=True)
    assert sweep["best"]["job_id"] == board[0]["job_id"]
    jobs = live.get("/v1/jobs", params={"sweep_id": sweep_id}).json()["items"]
    assert {j["id"] for j in jobs} == {t["job_id"] for t in board}

    kinds = [e.event for e in events]
    assert kinds[0] == "sweep" and kinds[-1] == "end" and events[-1].data["status"] == "succeeded"
    assert kinds.count("finished") == 4 and kinds.count("trial_started") == 4 and "best" in kinds
    epochs = [e.data for e in events if e.event == "epoch"]
    assert {(e["trial"], e["epoch"]) for e in epochs} >= {(t, 4) for t in range(1, 5)} - {(t, 4) for t in range(1, 3)}
    assert all(e["objective"] == e["logs"]["val_accuracy"] for e in epochs)
    last_best = [e.data for e in events if e.event == "best"][-1]
    assert last_best["job_id"] == sweep["best"]["job_id"]

    importance = live.get(f"/v1/sweeps/{sweep_id}/importance").json()
    assert importance["trials_used"] == 4
    assert set(importance["importances"]) <= set(sweep_body("x")["search"])
    assert sum(importance["importances"].values()) == pytest.approx(1.0)


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)  # the verdict's code path is the same on both
def test_the_median_pruner_stops_trials_that_fall_behind_and_they_end_succeeded_as_pruned(live):
    dataset = live.post("/v1/datasets/examples/side-effects").json()
    body = sweep_body(
        dataset["id"],
        search={
            # 1e-6 barely moves the weights: those trials stay behind the others from the first epochs on.
            "compile.optimizer.learning_rate": {"type": "choice", "values": [0.03, 0.02, 0.01, 1e-6]},
            "model.layers[0].units": {"type": "choice", "values": [8, 16]},
        },
        fit={"epochs": 12, "batch_size": 32, "validation_split": 0.2, "seed": 0, "normalize": "minmax"},
        pruner="median",
        parallel=1,
        seed=3,
    )
    sweep_id = live.post("/v1/sweeps", json=body).json()["id"]
    sweep = wait_for_sweep(live, sweep_id, timeout_s=300)
    assert sweep["status"] == "succeeded" and sweep["trials_created"] == 8
    pruned = [t for t in sweep["leaderboard"] if t["stop_reason"] == "pruned"]
    assert pruned, sweep["leaderboard"]
    assert sweep["counts"]["pruned"] == len(pruned)
    for trial in pruned:
        assert trial["status"] == "succeeded" and trial["epochs_completed"] < 12 and trial["objective"] is not None
        job = live.get(f"/v1/jobs/{trial['job_id']}").json()
        assert job["stop_reason"] == "pruned" and "pruned after epoch" in job["history"][-1]["message"]
    assert sweep["best"]["params"]["compile.optimizer.learning_rate"] != 1e-6
    assert sweep["best"]["stop_reason"] == "completed"


def test_a_sweep_ends_with_exactly_its_trials_through_a_killed_worker_and_restarted_api_and_scheduler(tmp_path):
    """On PostgreSQL + Redis (the cluster of the fault tests)."""
    with cluster(tmp_path) as c:
        worker = c.start_worker()
        dataset = c.http.post("/v1/datasets/examples/side-effects").json()
        body = sweep_body(dataset["id"], fit={"epochs": 15, "batch_size": 16, "validation_split": 0.2, "seed": 0})
        sweep_id = c.http.post(
            "/v1/sweeps",
            json={
                **body,
                "sampler": "random",
                "trials": 5,
                "search": {"compile.optimizer.learning_rate": {"type": "loguniform", "low": 0.001, "high": 0.05}},
            },
        ).json()["id"]
        wait_running = time.monotonic() + 120
        while c.http.get(f"/v1/sweeps/{sweep_id}").json()["counts"]["running"] == 0:
            assert time.monotonic() < wait_running
            time.sleep(0.1)
        os.kill(worker.process.pid, signal.SIGKILL)  # mid-trial
        c.scheduler.stop()
        c.api.stop()
        c.api = ApiServer(c.settings, tmp_path / "api2.log")
        c.api.wait_ready()
        c.http.base_url = c.api.url
        c.scheduler = start_scheduler(c.settings, tmp_path / "scheduler2.log")
        c.start_worker()
        sweep = wait_for_sweep(c.http, sweep_id, timeout_s=300)
        assert sweep["status"] == "succeeded" and sweep["trials_created"] == 5 and sweep["counts"]["succeeded"] == 5
        assert sorted(t["trial"] for t in sweep["leaderboard"]) == [1, 2, 3, 4, 5]
        resumed = [c.http.get(f"/v1/jobs/{t['job_id']}").json() for t in sweep["leaderboard"]]
        assert any(len(job["attempts"]) == 2 for job in resumed)  # the killed trial resumed on the new worker
        for job in resumed:
            rows = c.http.get(f"/v1/jobs/{job['id']}/metrics").json()["epochs"]
            assert [r["epoch"] for r in rows] == list(range(1, 16))  # every epoch once
