"""/v1/jobs/{id}/predict and /evaluate in process: 409 before success, 422 naming input and row,
404 across owners, and files in and out. The model is trained here and the job marked succeeded
as the worker would; tests/integration/test_inference_e2e.py runs the real worker."""

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app import ingest, lifecycle
from app.admin import create_api_key
from app.db import make_engine, make_session_factory, session_scope
from app.lifecycle import JobStatus
from app.main import create_app
from app.models import Dataset
from app.specs import TUTORIAL_COMPILE, TUTORIAL_FIT, TUTORIAL_LAYERS, TrainingSpec
from app.training.builder import build_model, compile_model
from tests.api.test_jobs import tutorial_job
from tests.conftest import embedded_settings


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    settings = embedded_settings(tmp_path_factory.mktemp("inference") / "var")
    with TestClient(create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {create_api_key('tests', settings)}"
        other = {"Authorization": f"Bearer {create_api_key('other', settings)}"}
        dataset = client.post("/v1/datasets/examples/side-effects").json()
        job_id = client.post("/v1/jobs", json=tutorial_job(dataset["id"], epochs=2)).json()["id"]
        queued_id = client.post("/v1/jobs", json=tutorial_job(dataset["id"])).json()["id"]
        factory = make_session_factory(make_engine(settings.resolved_database_url))
        with session_scope(factory) as session:
            storage_key = session.get(Dataset, dataset["id"]).storage_key
        x, y = ingest.load_arrays(settings.datasets_dir, storage_key)
        spec = TrainingSpec.model_validate(
            {"model": {"layers": TUTORIAL_LAYERS}, "compile": TUTORIAL_COMPILE, "fit": TUTORIAL_FIT}
        )
        model = build_model(spec, (1,), x)
        compile_model(model, spec.compile)
        model.fit(x, y, epochs=2, batch_size=10, verbose=0)
        path = settings.models_dir / f"{job_id}.keras"
        path.parent.mkdir(parents=True, exist_ok=True)
        model.save(path)
        with session_scope(factory) as session:
            lifecycle.claim(session, job_id, "tests")
        with session_scope(factory) as session:
            lifecycle.finish(session, job_id, JobStatus.SUCCEEDED, worker="tests", message="trained", model_path=str(path))
        yield {
            "client": client,
            "other": other,
            "job": job_id,
            "queued": queued_id,
            "dataset": dataset,
            "model": model,
            "x": x,
            "y": y,
        }


def test_predict_json_equals_keras_and_the_second_call_is_a_cache_hit(served):
    client, job = served["client"], served["job"]
    rows = [[20.0], [90.0], [42.0]]
    first = client.post(f"/v1/jobs/{job}/predict", json={"inputs": rows})
    assert first.status_code == 200, first.text
    second = client.post(f"/v1/jobs/{job}/predict", json={"inputs": rows})
    assert (first.headers["epochly-model-cache"], second.headers["epochly-model-cache"]) == ("miss", "hit")
    expected = served["model"].predict(np.array(rows, dtype=np.float32), verbose=0)
    np.testing.assert_allclose(np.array(first.json()["predictions"]), expected, atol=1e-6, rtol=0)


def test_a_job_that_has_not_succeeded_is_409_and_another_owners_is_404(served):
    client, queued = served["client"], served["queued"]
    for endpoint, body in (("predict", {"inputs": [[20.0]]}), ("evaluate", {"dataset_id": served["dataset"]["id"]})):
        response = client.post(f"/v1/jobs/{queued}/{endpoint}", json=body)
        assert response.status_code == 409 and "queued" in response.json()["detail"]
        assert response.headers["content-type"] == "application/problem+json"
        assert client.post(f"/v1/jobs/{served['job']}/{endpoint}", json=body, headers=served["other"]).status_code == 404
        assert client.post(f"/v1/jobs/job_nope/{endpoint}", json=body).status_code == 404


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"inputs": [[1.0], [2.0], [3.0], [4.0, 5.0]]}, "inputs[3]"),
        ({"inputs": [[1.0], ["old"]]}, "inputs[1]"),
        ({"inputs": [[1.0]] * 10_001}, "inputs[10000]"),
        ({"inputs": {"age": [[1.0]]}}, "inputs.age"),
        ({}, "body"),
        ({"inputs": [[1.0]], "dataset_id": "ds_x"}, "body"),
    ],
)
def test_bad_predict_input_is_422_naming_input_and_row(served, body, path):
    response = served["client"].post(f"/v1/jobs/{served['job']}/predict", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["path"] == path


def test_a_missing_dataset_is_404_naming_the_field(served):
    for endpoint in ("predict", "evaluate"):
        response = served["client"].post(f"/v1/jobs/{served['job']}/{endpoint}", json={"dataset_id": "ds_nope"})
        assert response.status_code == 404, response.text
        assert response.json()["errors"][0]["path"] == "dataset_id"


def test_evaluate_equals_model_evaluate(served):
    response = served["client"].post(f"/v1/jobs/{served['job']}/evaluate", json={"dataset_id": served["dataset"]["id"]})
    assert response.status_code == 200, response.text
    expected = served["model"].evaluate(served["x"], served["y"], verbose=0, return_dict=True)
    body = response.json()
    assert body["samples"] == 2100 and set(body) == {*expected, "samples"}
    for name, value in expected.items():
        assert body[name] == pytest.approx(value, abs=1e-6)


def test_evaluate_on_a_dataset_of_another_shape_is_422_at_dataset_id(served):
    client = served["client"]
    buffer = io.BytesIO()
    np.savez(buffer, x=np.zeros((8, 3), np.float32), y=np.zeros(8, np.int32))
    wide = client.post("/v1/datasets", files={"file": ("wide.npz", buffer.getvalue())}).json()
    response = client.post(f"/v1/jobs/{served['job']}/evaluate", json={"dataset_id": wide["id"]})
    assert response.status_code == 422
    assert response.json()["errors"][0]["path"] == "dataset_id" and "[3]" in response.json()["errors"][0]["message"]
    other = client.post(f"/v1/jobs/{served['job']}/evaluate", json={"dataset_id": wide["id"]}, headers=served["other"])
    assert other.status_code == 404  # the job is not theirs; a dataset of theirs is asked for by id only


def test_predict_files_in_and_out(served):
    client, job, model, x = served["client"], served["job"], served["model"], served["x"]
    expected = model.predict(x, verbose=0)
    by_dataset = client.post(f"/v1/jobs/{job}/predict", json={"dataset_id": served["dataset"]["id"]})
    assert by_dataset.status_code == 200 and by_dataset.headers["content-type"] == "application/octet-stream"
    np.testing.assert_allclose(np.load(io.BytesIO(by_dataset.content)), expected, atol=1e-6, rtol=0)

    buffer = io.BytesIO()
    np.savez(buffer, x=np.asarray(x).ravel())  # one number per row is reshaped to (n, 1)
    by_npz = client.post(f"/v1/jobs/{job}/predict", files={"file": ("ages.npz", buffer.getvalue())})
    assert by_npz.status_code == 200, by_npz.text
    np.testing.assert_allclose(np.load(io.BytesIO(by_npz.content)), expected, atol=1e-6, rtol=0)

    csv = "age\n" + "\n".join(f"{v:.9g}" for v in np.asarray(x).ravel()) + "\n"
    by_csv = client.post(f"/v1/jobs/{job}/predict", files={"file": ("ages.csv", csv.encode())})
    assert by_csv.status_code == 200 and by_csv.headers["content-type"].startswith("text/csv")
    lines = by_csv.text.splitlines()
    assert lines[0] == '"output_0","output_1"' and len(lines) == 2101
    np.testing.assert_allclose(np.loadtxt(lines[1:], delimiter=",", dtype=np.float32), expected, atol=1e-6, rtol=0)

    predictions_dir = client.app.state.settings.predictions_dir
    assert not list(predictions_dir.iterdir())  # inputs and answers are removed once sent

    bad = client.post(f"/v1/jobs/{job}/predict", files={"file": ("ages.csv", b"age\n20\nold\n")})
    assert bad.status_code == 422 and bad.json()["errors"][0] == {
        "path": "file",
        "message": "row 2, column 'age': 'old' is not a number",
    }


def test_predict_file_answers_an_upload_as_predict_does(served):
    client, job = served["client"], served["job"]
    upload = {"file": ("ages.csv", b"age\n20\n90\n")}
    by_file = client.post(f"/v1/jobs/{job}/predict/file", files=upload, data={"format": "npy"})
    assert by_file.status_code == 200 and by_file.headers["content-type"] == "application/octet-stream"
    assert by_file.content == client.post(f"/v1/jobs/{job}/predict", files=upload, data={"format": "npy"}).content
    missing = client.post(f"/v1/jobs/{job}/predict/file", json={"inputs": [[20.0]]})
    assert missing.status_code == 422 and missing.json()["errors"][0]["path"] == "file"


def test_a_json_body_over_max_request_bytes_is_413(served):
    rows = [[1.0]] * 200_000  # ~1.4 MB of JSON; files take big batches
    response = served["client"].post(f"/v1/jobs/{served['job']}/predict", json={"inputs": rows})
    assert response.status_code == 413 and ".npz" in response.json()["detail"]


def test_a_compressed_predict_upload_is_held_to_its_expanded_size_like_a_dataset(served):
    from tests.api.test_keys import _npy_header, _npz

    client, job = served["client"], served["job"]
    predictions_dir = client.app.state.settings.predictions_dir
    # A few KB of zeros, declaring 10^5 x 10^5 float32 = 40 GB: refused from the header, before inflating.
    bomb = _npz({"x": _npy_header((100_000, 100_000), "<f4") + bytes(64 * 1024)})
    response = client.post(f"/v1/jobs/{job}/predict", files={"file": ("bomb.npz", bomb)})
    assert response.status_code == 413, response.text
    assert "40,000,000,128 bytes" in response.json()["detail"] and "'x'" in response.json()["detail"]

    # A member that runs past its own header is cut off as it streams.
    liar = _npy_header((10, 1), "<f4") + bytes(40) + bytes(5 * 1024 * 1024)
    response = client.post(f"/v1/jobs/{job}/predict", files={"file": ("liar.npz", _npz({"x": liar}))})
    assert response.status_code == 413, response.text
    assert "more data than its header declares" in response.json()["detail"]
    assert not list(predictions_dir.iterdir())
