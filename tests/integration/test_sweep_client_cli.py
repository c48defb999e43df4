"""Sweeps from the Python client and the `epochly` command, against a live service (embedded back end)."""

import json

import pytest

from epochly_client import Client
from epochly_client.tutorial import TUTORIAL_JOB
from tests.integration.test_client_cli import epochly

pytestmark = pytest.mark.parametrize("backend", ["embedded"], indirect=True)

RATES = [0.001, 0.01]


def small_sweep() -> dict:
    return {
        "name": "rates",
        "model": TUTORIAL_JOB["model"],
        "compile": TUTORIAL_JOB["compile"],
        "fit": {**TUTORIAL_JOB["fit"], "epochs": 3, "validation_split": 0.2},
        "search": {
            "compile.optimizer.learning_rate": {"type": "choice", "values": RATES},
            "model.layers[0].units": {"type": "choice", "values": [16]},
        },
        "sampler": "grid",
        "pruner": "none",
        "objective": {"metric": "val_accuracy", "direction": "maximize"},
        "parallel": 2,
    }


def test_a_sweep_from_the_command_line(service, tmp_path):
    with Client(service.url, api_key=service.key) as client:
        dataset = client.example_dataset()
    spec = tmp_path / "sweep.json"
    spec.write_text(json.dumps(small_sweep()))

    created = epochly(service, "sweep", "create", str(spec), "--dataset", dataset.id, "--follow", timeout=300)
    assert created.returncode == 0, created.stdout + created.stderr
    sweep_id = created.stdout.split()[1].rstrip(":")
    assert sweep_id.startswith("swp_")
    assert "trial 1 " in created.stdout and "trial 2 " in created.stdout
    assert "best: trial " in created.stdout and f"sweep {sweep_id} succeeded" in created.stdout

    listed = epochly(service, "sweeps")
    assert listed.returncode == 0 and sweep_id in listed.stdout and "2/2" in listed.stdout
    listed_json = json.loads(epochly(service, "sweeps", "--json").stdout)
    assert sweep_id in [s["id"] for s in listed_json]

    shown = json.loads(epochly(service, "sweep", "show", sweep_id, "--json").stdout)
    assert shown["status"] == "succeeded" and len(shown["leaderboard"]) == 2
    assert all(t["objective"] is not None and t["epochs_completed"] == 3 for t in shown["leaderboard"])
    assert shown["importance"]["sweep_id"] == sweep_id
    assert "best: trial " in epochly(service, "sweep", "show", sweep_id).stdout

    with Client(service.url, api_key=service.key) as client:
        trials, _ = client.jobs(sweep_id=sweep_id)
        sweep = client.sweep(sweep_id)
    assert sorted(job.trial for job in trials) == [1, 2]
    assert all(job.sweep_id == sweep_id for job in trials)
    assert sorted(job.params["compile.optimizer.learning_rate"] for job in trials) == RATES
    assert sweep.best is not None and sweep.best.objective == max(t.objective for t in sweep.leaderboard)
    assert f"best: trial {sweep.best.trial} - val_accuracy: {sweep.best.objective:.4f}" in created.stdout
    listed_trials = json.loads(epochly(service, "jobs", "--sweep", sweep_id, "--json").stdout)
    assert sorted(j["id"] for j in listed_trials) == sorted(job.id for job in trials)

    cancelled = epochly(service, "sweep", "cancel", sweep_id)
    assert cancelled.returncode == 1
    assert cancelled.stderr.startswith("error: ") and "already succeeded" in cancelled.stderr
    assert "Traceback" not in cancelled.stderr


def test_client_waits_for_a_sweep_and_reads_its_importance(service):
    with Client(service.url, api_key=service.key) as client:
        dataset = client.example_dataset()
        sweep = client.create_sweep(small_sweep(), dataset_id=dataset.id)
        assert (sweep.status, sweep.trials, sweep.metric) == ("queued", 2, "val_accuracy")
        final = client.wait_sweep(sweep.id)
        importance = client.sweep_importance(sweep.id)
    assert final.done and final.status == "succeeded" and final.trials_finished == 2
    assert sorted(t.trial for t in final.leaderboard) == [1, 2] and final.best == final.leaderboard[0]
    assert importance.trials_used == 2
