"""Evaluate and predict on a model the real worker trained, over HTTP, on both back ends: the
numbers are those of the downloaded model's predict / evaluate."""

import io

import keras
import numpy as np
import pytest

from tests.integration.test_training_e2e import tutorial, wait_until_done


@pytest.fixture(scope="module")
def trained(live, tmp_path_factory):
    dataset = live.post("/v1/datasets/examples/side-effects").json()
    job = wait_until_done(live, live.post("/v1/jobs", json=tutorial(dataset["id"], epochs=3)).json()["id"])
    assert job["status"] == "succeeded", job["error"]
    path = tmp_path_factory.mktemp("downloaded") / "model.keras"
    path.write_bytes(live.get(f"/v1/jobs/{job['id']}/model").content)
    return job["id"], dataset["id"], keras.models.load_model(path)


@pytest.fixture(scope="module")
def live(service):
    import httpx

    with httpx.Client(base_url=service.url, timeout=60, headers={"Authorization": f"Bearer {service.key}"}) as client:
        yield client


def test_predict_over_http_equals_the_downloaded_models_predict_on_raw_ages(live, trained):
    job_id, _, model = trained
    ages = [[13.0], [20.0], [35.0], [50.0], [64.0], [65.0], [70.0], [80.0], [90.0], [100.0]]
    first = live.post(f"/v1/jobs/{job_id}/predict", json={"inputs": ages})
    second = live.post(f"/v1/jobs/{job_id}/predict", json={"inputs": ages})
    assert first.status_code == 200, first.text
    assert second.headers["epochly-model-cache"] == "hit"  # warm: the file is not loaded again
    expected = model.predict(np.array(ages, dtype=np.float32), verbose=0)
    np.testing.assert_allclose(np.array(first.json()["predictions"]), expected, atol=1e-6, rtol=0)
    np.testing.assert_allclose(np.array(second.json()["predictions"]), expected, atol=1e-6, rtol=0)


def test_evaluate_over_http_equals_the_downloaded_models_evaluate(live, trained):
    job_id, dataset_id, model = trained
    response = live.post(f"/v1/jobs/{job_id}/evaluate", json={"dataset_id": dataset_id})
    assert response.status_code == 200, response.text
    by_npz = live.post(f"/v1/jobs/{job_id}/predict", json={"dataset_id": dataset_id})
    x = np.load(io.BytesIO(by_npz.content))  # predictions over the dataset, to size the check below
    assert x.shape == (2100, 2)
    # The example dataset, rebuilt from its seed, is what the job trained on.
    from app.examples import side_effects

    ages, labels = side_effects()
    expected = model.evaluate(ages, labels, verbose=0, return_dict=True)
    body = response.json()
    assert body["samples"] == 2100
    for name, value in expected.items():
        assert body[name] == pytest.approx(value, abs=1e-6), name
    np.testing.assert_allclose(x, model.predict(ages, verbose=0), atol=1e-6, rtol=0)


def test_bad_rows_are_422_and_an_unfinished_job_is_409(live, trained):
    job_id, dataset_id, _ = trained
    wide = live.post(f"/v1/jobs/{job_id}/predict", json={"inputs": [[20.0], [30.0], [40.0], [50.0, 1.0]]})
    assert wide.status_code == 422 and wide.json()["errors"][0]["path"] == "inputs[3]"
    word = live.post(f"/v1/jobs/{job_id}/predict", json={"inputs": [[20.0], ["ninety"]]})
    assert word.status_code == 422 and word.json()["errors"][0]["path"] == "inputs[1]"
    pending = live.post("/v1/jobs", json=tutorial(dataset_id, epochs=500)).json()["id"]
    try:
        response = live.post(f"/v1/jobs/{pending}/predict", json={"inputs": [[20.0]]})
        assert response.status_code == 409, response.text
    finally:
        live.post(f"/v1/jobs/{pending}/cancel")
