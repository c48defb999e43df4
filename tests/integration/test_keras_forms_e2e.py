"""Every model form a Keras user writes, sent as `to_json()` (a string and parsed), trained by the real
worker; the `.keras` download loads back and /predict, /evaluate and a sweep over the form take it.

The forms exercise Keras, not the back end: the embedded default carries them (the other back end
runs the same code path, and tests/integration/test_training_e2e.py trains on both)."""

import json

import keras
import numpy as np
import pytest

from tests.integration.test_sweeps_e2e import wait_for_sweep
from tests.integration.test_training_e2e import wait_until_done
from tests.keras_forms import FORMS, Form

pytestmark = pytest.mark.parametrize("backend", ["embedded"], indirect=True)
EPOCHS = 2
SHAPES = ["string", "parsed"]


def spec_for(form: Form, dataset_id: str, shape: str) -> dict:
    keras_json = form.keras_json()
    return {
        "dataset_id": dataset_id,
        "name": f"{form.name} ({shape})",
        "model": {"keras_json": keras_json if shape == "string" else json.loads(keras_json)},
        "compile": form.compile,
        "fit": {"epochs": EPOCHS, "batch_size": 8, "seed": 0},
    }


@pytest.fixture(scope="module")
def trained(own_live) -> dict[str, tuple[str, dict[str, dict]]]:
    """Every form's dataset id and its jobs by shape, all submitted first so that one worker takes
    them back to back, then waited for."""
    submitted: dict[str, tuple[str, dict[str, str]]] = {}
    for form in FORMS:
        dataset = own_live.post("/v1/datasets", files={"file": ("data.npz", form.npz())})
        assert dataset.status_code == 201, dataset.text
        dataset_id = dataset.json()["id"]
        ids = {}
        for shape in SHAPES:
            response = own_live.post("/v1/jobs", json=spec_for(form, dataset_id, shape))
            assert response.status_code == 202, f"{form.name} ({shape}): {response.text}"
            ids[shape] = response.json()["id"]
        submitted[form.name] = (dataset_id, ids)
    return {
        name: (dataset_id, {shape: wait_until_done(own_live, job_id, timeout_s=240) for shape, job_id in ids.items()})
        for name, (dataset_id, ids) in submitted.items()
    }


def downloaded(own_live, job_id: str, tmp_path) -> keras.Model:
    path = tmp_path / f"{job_id}.keras"
    response = own_live.get(f"/v1/jobs/{job_id}/model")
    assert response.status_code == 200, response.text
    path.write_bytes(response.content)
    return keras.models.load_model(path)


@pytest.mark.parametrize("form", FORMS, ids=[form.name for form in FORMS])
def test_each_form_trains_and_its_download_predicts_as_the_api_does(own_live, trained, form, tmp_path):
    dataset_id, jobs = trained[form.name]
    for shape, job in jobs.items():
        assert job["status"] == "succeeded", f"{shape}: {job['error']}"
        assert job["epochs_completed"] == EPOCHS
        logs = own_live.get(f"/v1/jobs/{job['id']}/metrics").json()["epochs"][-1]["logs"]
        assert np.isfinite(logs["loss"])

    job_id = jobs["string"]["id"]
    model = downloaded(own_live, job_id, tmp_path)
    inputs = {name: value[:5] for name, value in form.inputs().items()}
    body = {"inputs": inputs[""].tolist()} if "" in inputs else {"inputs": {n: v.tolist() for n, v in inputs.items()}}
    response = own_live.post(f"/v1/jobs/{job_id}/predict", json=body)
    assert response.status_code == 200, response.text
    expected = model.predict(inputs.get("", inputs), verbose=0)
    predictions = response.json()["predictions"]
    if isinstance(expected, dict | list):
        named = expected if isinstance(expected, dict) else dict(zip(("kind", "size"), expected, strict=True))
        assert set(predictions) == set(named)
        for name, value in named.items():
            np.testing.assert_allclose(np.array(predictions[name]), value, atol=1e-5, rtol=0)
    else:
        np.testing.assert_allclose(np.array(predictions), expected, atol=1e-5, rtol=0)

    evaluated = own_live.post(f"/v1/jobs/{job_id}/evaluate", json={"dataset_id": dataset_id})
    assert evaluated.status_code == 200, evaluated.text
    scores = evaluated.json()
    assert scores["samples"] == len(next(iter(form.inputs().values())))
    assert np.isfinite(scores["loss"])
    if "y" not in form.arrays:
        assert {"kind_accuracy", "kind_sparse_top_k_categorical_accuracy", "size_mae"} <= set(scores), scores


def test_a_sweep_searches_a_path_inside_each_forms_to_json(own_live, trained):
    """One trial per form: the width of its first hidden layer set to 4 through the sweep's path
    into model.keras_json, which the trial's spec then carries."""
    sweeps = {}
    for form in FORMS:
        dataset_id, _ = trained[form.name]
        base = spec_for(form, dataset_id, "parsed")
        path = form.hidden_width_path()
        body = {
            **base,
            "search": {path: {"type": "choice", "values": [4]}},
            "sampler": "grid",
            "objective": {"metric": "loss", "direction": "minimize"},
        }
        response = own_live.post("/v1/sweeps", json=body)
        assert response.status_code == 202, f"{form.name}: {response.text}"
        sweeps[form.name] = (response.json()["id"], path)
    for name, (sweep_id, path) in sweeps.items():
        sweep = wait_for_sweep(own_live, sweep_id)
        assert sweep["status"] == "succeeded", (name, sweep)
        (trial,) = own_live.get("/v1/jobs", params={"sweep_id": sweep_id}).json()["items"]
        assert trial["status"] == "succeeded" and trial["params"] == {path: 4}, (name, trial)
        spec = own_live.get(f"/v1/jobs/{trial['id']}").json()["spec"]
        node = spec
        for part in path.replace("[", ".[").split("."):
            node = node[int(part[1:-1])] if part.startswith("[") else node[part]
        assert node == 4, name


def test_the_report_models_download_is_the_trained_sequential(own_live, trained, tmp_path):
    """The Sequential comes back a Sequential: nothing wrapped it on the way."""
    _, jobs = trained["Sequential with input_shape="]
    model = downloaded(own_live, jobs["parsed"]["id"], tmp_path)
    assert isinstance(model, keras.Sequential)
    assert [type(layer).__name__ for layer in model.layers] == ["Dense", "Dense", "Dense"]
    assert model.get_weights()[0].shape == (4, 8)
