"""STORAGE_URL=s3://… against a real S3-compatible server (moto's server mode): the API and the
workers have DATA_DIRs of their own and share nothing but the database, the broker and the bucket,
as on separate machines. A worker killed mid-job resumes from the checkpoint in the bucket; the
bucket gone for 10 s mid-job costs no epoch and no model."""

import time
import uuid

import httpx
import keras
import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.storage import open_store
from tests.conftest import start_worker
from tests.integration.test_faults import assert_same_losses, cluster, epoch_logs, wait_for_epoch
from tests.integration.test_training_e2e import tutorial, wait_until_done


@pytest.fixture(scope="module")
def c(tmp_path_factory, moto_s3):
    """The API and the scheduler on one DATA_DIR; each test starts its workers on DATA_DIRs of their own."""
    folder = tmp_path_factory.mktemp("object-storage")
    storage_url = f"s3://{moto_s3.bucket}/{uuid.uuid4().hex}"
    with cluster(folder, storage_url=storage_url) as running:
        running.store = open_store(storage_url, folder)
        yield running


@pytest.fixture
def workers(c):
    """Start workers elsewhere; they stop when the test ends, so the next test's jobs meet only its own."""
    started = []

    def start(tmp_path):
        """A worker with a DATA_DIR of its own: it reaches the API's files only through the bucket."""
        settings = c.settings.model_copy(update={"data_dir": tmp_path / f"machine-{uuid.uuid4().hex[:6]}"})
        worker = start_worker(settings, tmp_path / f"worker{len(started)}.log")
        started.append(worker)
        return worker, settings.data_dir

    yield start
    for worker in started:
        worker.stop()


def assert_model_predicts_side_effects(content: bytes, tmp_path) -> None:
    path = tmp_path / f"{uuid.uuid4().hex}.keras"
    path.write_bytes(content)
    model = keras.models.load_model(path)
    assert model.predict(np.array([[20.0], [90.0]], dtype=np.float32), verbose=0).argmax(axis=1).tolist() == [0, 1]


def test_tutorial_with_api_and_worker_on_separate_data_dirs_and_one_bucket(c, workers, tmp_path, moto_s3):
    _, worker_dir = workers(tmp_path)
    dataset = c.http.post("/v1/datasets/examples/side-effects").json()
    again = c.http.post("/v1/datasets/examples/side-effects").json()
    storage_key = dataset_storage_key(c.store, dataset)
    assert c.store.list(f"datasets/{storage_key}") == [f"datasets/{storage_key}/x.npy", f"datasets/{storage_key}/y.npy"]
    assert again["id"] != dataset["id"]  # two datasets, one stored copy

    job_id = c.http.post("/v1/jobs", json=tutorial(dataset["id"])).json()["id"]
    job = wait_until_done(c.http, job_id, timeout_s=180)
    assert job["status"] == "succeeded", job
    assert len(epoch_logs(c.http, job_id)) == 20
    assert c.store.exists(f"models/{job_id}.keras")
    assert c.store.list(f"checkpoints/{job_id}") == []  # nothing to resume once finished
    assert (worker_dir / "cache" / "datasets" / storage_key / "x.npy").is_file()  # read through its cache
    assert not (c.settings.data_dir / "models" / f"{job_id}.keras").exists()

    response = c.http.get(f"/v1/jobs/{job_id}/model")  # streamed from the bucket through the API
    assert response.status_code == 200
    assert_model_predicts_side_effects(response.content, tmp_path)
    predicted = c.http.post(f"/v1/jobs/{job_id}/predict", json={"inputs": [[20.0], [90.0]]})
    assert predicted.status_code == 200, predicted.text

    presigning = c.settings.model_copy(update={"storage_presign": True, "data_dir": tmp_path / "api2"})
    with TestClient(create_app(presigning), follow_redirects=False) as api:
        redirect = api.get(f"/v1/jobs/{job_id}/model", headers=c.http.headers)
    assert redirect.status_code == 307
    location = redirect.headers["location"]
    assert location.startswith(moto_s3.endpoint) and "Signature" in location
    assert_model_predicts_side_effects(httpx.get(location).content, tmp_path)

    for one in (dataset, again):
        assert c.http.delete(f"/v1/datasets/{one['id']}").status_code == 204
    assert c.store.list(f"datasets/{storage_key}") == []  # gone with the last dataset that used it


def dataset_storage_key(store, dataset: dict) -> str:
    keys = {key.split("/")[1] for key in store.list("datasets")}
    assert len(keys) == 1, keys
    return keys.pop()


def test_worker_killed_mid_job_resumes_from_the_checkpoint_in_the_bucket_on_another_machine(c, workers, tmp_path):
    first, _ = workers(tmp_path)
    dataset = c.http.post("/v1/datasets/examples/side-effects").json()
    job_id = c.http.post("/v1/jobs", json=tutorial(dataset["id"], validation_split=0.1)).json()["id"]
    wait_for_epoch(c.http, job_id, 6)
    first.kill()
    assert c.store.exists(f"checkpoints/{job_id}/state.json")
    workers(tmp_path)
    job = wait_until_done(c.http, job_id, timeout_s=180)
    assert job["status"] == "succeeded", job
    assert [a["outcome"] for a in job["attempts"]] == ["worker lost", "succeeded"]
    resumed = epoch_logs(c.http, job_id)  # every epoch exactly once, in order
    assert len(resumed) == 20

    whole = c.http.post("/v1/jobs", json=tutorial(dataset["id"], validation_split=0.1)).json()["id"]
    assert wait_until_done(c.http, whole, timeout_s=180)["status"] == "succeeded"
    assert_same_losses(resumed, epoch_logs(c.http, whole))  # resumed exactly, not restarted


def test_bucket_unreachable_for_10_s_mid_job_loses_nothing_and_training_goes_on(c, workers, tmp_path, moto_s3):
    workers(tmp_path)
    dataset = c.http.post("/v1/datasets/examples/side-effects").json()
    epochs = 60
    job_id = c.http.post("/v1/jobs", json=tutorial(dataset["id"], epochs=epochs)).json()["id"]
    before = wait_for_epoch(c.http, job_id, 3)["epochs_completed"]
    moto_s3.pause()
    try:
        time.sleep(10)
        during = c.http.get(f"/v1/jobs/{job_id}").json()
    finally:
        moto_s3.resume()
    assert during["epochs_completed"] > before + 3, during  # checkpoint uploads waited; training did not
    job = wait_until_done(c.http, job_id, timeout_s=180)
    assert job["status"] == "succeeded", job
    assert len(epoch_logs(c.http, job_id)) == epochs
    response = c.http.get(f"/v1/jobs/{job_id}/model")
    assert response.status_code == 200
    assert_model_predicts_side_effects(response.content, tmp_path)
