"""The README's curl walkthrough runs as written against a live service."""
import json
import re
import shutil
import subprocess

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.parametrize("backend", ["embedded"], indirect=True)


def walkthrough(heading: str = "## Walkthrough with curl") -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split(heading, 1)[1]
    return re.search(r"```sh\n(.*?)```", section, re.S).group(1)


def run_walkthrough(service, tmp_path, heading: str) -> subprocess.CompletedProcess:
    if shutil.which("jq") is None or shutil.which("curl") is None:
        pytest.skip("the walkthrough uses curl and jq")
    (tmp_path / "key").write_text(service.key + "\n")
    script = walkthrough(heading).replace("http://127.0.0.1:8000", service.url).replace("var/local-api-key", str(tmp_path / "key"))
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)


def test_readme_curl_walkthrough_trains_the_tutorial(service, tmp_path):
    if shutil.which("jq") is None or shutil.which("curl") is None:
        pytest.skip("the walkthrough uses curl and jq")
    (tmp_path / "key").write_text(service.key + "\n")
    script = walkthrough().replace("http://127.0.0.1:8000", service.url).replace("var/local-api-key", str(tmp_path / "key"))
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    log_lines = [line for line in result.stdout.splitlines() if line.startswith("Epoch ")]
    assert len(log_lines) == 20 and log_lines[-1].startswith("Epoch 20/20 - ")
    polled = [line for line in result.stdout.splitlines() if line.startswith("epoch ")]
    assert [int(line.split()[1].rstrip(":")) for line in polled] == list(range(1, 21))
    final_accuracy = float(re.search(r" - accuracy: ([0-9.]+)", log_lines[-1]).group(1))
    assert final_accuracy >= 0.85
    assert (tmp_path / "tutorial.keras").stat().st_size > 1000


def test_readme_validate_stop_early_walkthrough_stops_early_on_its_validation_set(service, tmp_path):
    result = run_walkthrough(service, tmp_path, "## Validate, stop early, use the model")
    assert result.returncode == 0, result.stderr
    summary, _ = json.JSONDecoder().raw_decode(result.stdout, result.stdout.index("{"))
    assert summary["status"] == "succeeded" and summary["stop_reason"] == "early_stopping", summary
    assert summary["epochs_completed"] < summary["epochs_total"] == 100
    assert 1 <= summary["best_epoch"] < summary["epochs_completed"] and "val_loss" in summary["best"]
    rows = [line.split() for line in result.stdout.splitlines() if " val_loss " in line and " lr " in line]
    assert [int(r[0]) for r in rows] == list(range(1, summary["epochs_completed"] + 1))
    assert float(rows[-1][-1]) < float(rows[0][-1])  # ReduceLROnPlateau cut the learning rate, and it shows
    assert f"Epoch {summary['epochs_completed']}: early stopping" in result.stdout
    assert (tmp_path / "stopped-early.keras").stat().st_size > 1000


def test_readme_sweeps_walkthrough_runs_the_grid_and_ranks_it(service, tmp_path):
    result = run_walkthrough(service, tmp_path, "## Sweeps")
    assert result.returncode == 0, result.stderr
    board = [line.split(" ", 5) for line in result.stdout.splitlines() if line.startswith("trial ")]
    assert len(board) == 8  # the whole 2 x 2 x 2 grid
    objectives = [float(row[2]) for row in board]
    assert objectives == sorted(objectives, reverse=True) and objectives[0] > 0.8
    assert {json.loads(row[5])["fit.batch_size"] for row in board} == {10, 32}
    summary = json.loads(next(line for line in result.stdout.splitlines() if line.startswith('{"status"')))
    assert summary["status"] == "succeeded" and sum(summary["counts"][s] for s in ("succeeded", "failed", "cancelled")) == 8
    trials = [line for line in result.stdout.splitlines() if line.split(" ")[-1] == "succeeded" and " job_" in line]
    assert sorted(int(line.split()[0]) for line in trials) == list(range(1, 9))
