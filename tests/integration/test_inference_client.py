"""`Client.evaluate` / `Client.predict` and `epochly evaluate` / `epochly predict` against a live service."""

import json

import numpy as np
import pytest

from epochly_client import Client, EpochlyError
from epochly_client.tutorial import TUTORIAL_JOB
from tests.integration.test_client_cli import epochly

pytestmark = pytest.mark.parametrize("backend", ["embedded"], indirect=True)


def test_client_and_cli_evaluate_and_predict(service, tmp_path):
    with Client(service.url, api_key=service.key) as client:
        dataset = client.example_dataset()
        job = client.wait(client.submit(TUTORIAL_JOB | {"fit": {**TUTORIAL_JOB["fit"], "epochs": 2}}, dataset_id=dataset.id).id)
        assert job.status == "succeeded"
        predictions = client.predict(job.id, [[20.0], [90.0]])
        assert np.array(predictions).shape == (2, 2)
        scores = client.evaluate(job.id, dataset.id)
        assert scores["samples"] == 2100 and {"loss", "accuracy"} <= set(scores)
        written = client.predict_dataset(job.id, dataset.id, tmp_path / "all.npy")
        assert np.load(written).shape == (2100, 2)
        with pytest.raises(EpochlyError) as info:
            client.predict(job.id, [[20.0, 1.0]])
        assert info.value.status == 422 and info.value.errors[0]["path"] == "inputs[0]"

    shown = epochly(service, "predict", job.id, "--inputs", "[[20], [90]]")
    assert shown.returncode == 0, shown.stderr
    assert np.allclose(json.loads(shown.stdout), predictions, atol=1e-6)
    evaluated = epochly(service, "evaluate", job.id, "--dataset", dataset.id, "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout) == pytest.approx(scores)
    line = epochly(service, "evaluate", job.id, "--dataset", dataset.id).stdout
    assert line.startswith("loss: ") and "samples: 2100" in line

    csv = tmp_path / "ages.csv"
    csv.write_text("age\n20\n90\n")
    made = epochly(service, "predict", job.id, "--file", str(csv), "--out", str(tmp_path / "p.csv"))
    assert made.returncode == 0, made.stderr
    assert np.allclose(np.loadtxt(tmp_path / "p.csv", delimiter=",", skiprows=1), predictions, atol=1e-6)
    bad = epochly(service, "predict", job.id, "--inputs", '[[20], ["old"]]')
    assert bad.returncode == 1 and "inputs[1]" in bad.stderr
