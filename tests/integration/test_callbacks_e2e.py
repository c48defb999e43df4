"""Issue 11 through a real worker: a validation dataset, callbacks as data (stop_reason, best_epoch,
best, learning rates in rows), class weights, and how the API, stream, log and CLI report them."""
import io
import os
import subprocess
import sys

import httpx
import keras
import numpy as np
import pytest

from tests.integration.sse import read_events
from tests.integration.test_training_e2e import wait_until_done

pytestmark = pytest.mark.parametrize("backend", ["embedded"], indirect=True)
STOPPERS = [
    {"type": "EarlyStopping", "monitor": "val_loss", "patience": 3, "min_delta": 0.002, "restore_best_weights": True},
    {"type": "ReduceLROnPlateau", "monitor": "val_loss", "patience": 1, "factor": 0.5},
    {"type": "TerminateOnNaN"},
]


def noisy_arrays(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    y = ((x[:, 0] + 0.5 * x[:, 1] > 0) ^ (rng.random(n) < 0.2)).astype(np.int32)
    return x, y


def upload(live, x, y, name: str) -> str:
    buffer = io.BytesIO()
    np.savez(buffer, x=x, y=y)
    response = live.post("/v1/datasets", files={"file": (f"{name}.npz", buffer.getvalue())}, data={"name": name})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def job_spec(dataset_id: str, **fit) -> dict:
    return {
        "dataset_id": dataset_id,
        "model": {"layers": [{"type": "Dense", "units": 16, "activation": "relu"}, {"type": "Dense", "units": 2, "activation": "softmax"}]},
        "compile": {"optimizer": {"type": "Adam", "learning_rate": 0.05}, "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]},
        "fit": {"epochs": 60, "batch_size": 16, "seed": 5, "normalize": "standard", **fit},
    }


@pytest.fixture
def datasets(live):
    return upload(live, *noisy_arrays(240, 2), "train"), upload(live, *noisy_arrays(90, 3), "valid")


def test_early_stopping_on_a_validation_dataset_succeeds_early_and_says_why_everywhere(live, service, datasets, tmp_path):
    train_id, valid_id = datasets
    response = live.post("/v1/jobs", json=job_spec(train_id, validation_dataset_id=valid_id, callbacks=STOPPERS))
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    with live.stream("GET", f"/v1/jobs/{job_id}/events", timeout=180) as stream:
        events = list(read_events(stream))
    job = wait_until_done(live, job_id)

    assert job["status"] == "succeeded", job["error"]
    assert job["stop_reason"] == "early_stopping"
    assert job["epochs_completed"] < job["epochs_total"] == 60
    rows = live.get(f"/v1/jobs/{job_id}/metrics").json()["epochs"]
    assert len(rows) == job["epochs_completed"]
    assert all({"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"} <= set(r["logs"]) for r in rows)
    assert {"val_loss", "val_accuracy"} <= set(job["latest"])
    assert 1 <= job["best_epoch"] < len(rows) and job["best"] == rows[job["best_epoch"] - 1]["logs"]
    assert len(rows) == job["best_epoch"] + 3  # patience 3 after the best epoch
    assert min(r["logs"]["learning_rate"] for r in rows) < 0.05  # ReduceLROnPlateau cut it, visibly

    epoch_events = [e.data for e in events if e.event == "epoch"]
    assert [e["epoch"] for e in epoch_events] == [r["epoch"] for r in rows]
    assert all("val_loss" in e["logs"] for e in epoch_events)
    finished = [e.data for e in events if e.event == "status" and e.data["status"] == "succeeded"]
    assert "stopped early" in finished[0]["message"] and "EarlyStopping" in finished[0]["message"]
    assert events[-1].event == "end" and events[-1].data["status"] == "succeeded"

    log = live.get(f"/v1/jobs/{job_id}/log").text
    assert f"Epoch {len(rows)}: early stopping" in log and f"Best epoch: {job['best_epoch']}" in log
    assert " - val_loss: " in log.splitlines()[0] and " - learning_rate: " in log.splitlines()[0]

    # restore_best_weights: the downloaded model holds the best epoch's weights.
    path = tmp_path / "best.keras"
    path.write_bytes(live.get(f"/v1/jobs/{job_id}/model").content)
    x_val, y_val = noisy_arrays(90, 3)
    val_loss = keras.models.load_model(path).evaluate(x_val, y_val, verbose=0, return_dict=True)["loss"]
    assert val_loss == pytest.approx(job["best"]["val_loss"], rel=1e-4)

    env = {**os.environ, "EPOCHLY_URL": service.url, "EPOCHLY_API_KEY": service.key}
    shown = subprocess.run([sys.executable, "-c", "from epochly_client.cli import main; main()", "show", job_id],
                           capture_output=True, text=True, env=env, timeout=60)
    assert "stop reason: early_stopping" in shown.stdout and f"best epoch {job['best_epoch']}" in shown.stdout
    followed = subprocess.run([sys.executable, "-c", "from epochly_client.cli import main; main()", "follow", job_id],
                              capture_output=True, text=True, env=env, timeout=60)
    assert followed.returncode == 0
    assert f"stopped early by EarlyStopping after epoch {len(rows)} of 60; best epoch {job['best_epoch']}" in followed.stdout
    assert " - val_loss: " in followed.stdout


def test_a_job_that_runs_all_its_epochs_records_completed_and_its_best_epoch(live, datasets):
    train_id, _ = datasets
    job = wait_until_done(live, live.post("/v1/jobs", json=job_spec(train_id, epochs=4, validation_split=0.25)).json()["id"])
    assert job["status"] == "succeeded" and job["stop_reason"] == "completed"
    assert job["epochs_completed"] == 4 and 1 <= job["best_epoch"] <= 4 and "val_loss" in job["best"]


def test_class_weight_trains_with_weighted_classes(live, datasets):
    train_id, _ = datasets
    plain = wait_until_done(live, live.post("/v1/jobs", json=job_spec(train_id, epochs=2, shuffle=False)).json()["id"])
    weighted = wait_until_done(
        live, live.post("/v1/jobs", json=job_spec(train_id, epochs=2, shuffle=False, class_weight={"0": 1.0, "1": 3.0})).json()["id"]
    )
    assert weighted["status"] == plain["status"] == "succeeded", weighted["error"]
    assert weighted["spec"]["fit"]["class_weight"] == {"0": 1.0, "1": 3.0}
    assert weighted["latest"]["loss"] != pytest.approx(plain["latest"]["loss"], rel=1e-3)


def test_a_nan_loss_fails_the_job_with_stop_reason_nan_loss(live):
    rng = np.random.default_rng(0)
    dataset_id = upload(live, rng.normal(size=(64, 4)).astype(np.float32) * 1e3, rng.normal(size=(64,)).astype(np.float32) * 1e3, "big")
    spec = {
        "dataset_id": dataset_id,
        "model": {"layers": [{"type": "Dense", "units": 8}, {"type": "Dense", "units": 1}]},
        "compile": {"optimizer": {"type": "SGD", "learning_rate": 1e6}, "loss": "mse"},
        "fit": {"epochs": 5, "batch_size": 8, "callbacks": [{"type": "TerminateOnNaN"}]},
    }
    job = wait_until_done(live, live.post("/v1/jobs", json=spec).json()["id"])
    assert job["status"] == "failed" and job["stop_reason"] == "nan_loss"
    assert job["error"]["type"] == "NonFiniteLoss"


def problem(response: httpx.Response, status: int = 422) -> tuple[str, str]:
    assert response.status_code == status, response.text
    first = response.json()["errors"][0]
    return first["path"], first["message"]


def test_bad_validation_and_callback_specs_are_422_at_the_field(live, datasets):
    train_id, valid_id = datasets
    path, message = problem(live.post("/v1/jobs", json=job_spec(train_id, validation_split=0.2, validation_dataset_id=valid_id)))
    assert path == "fit.validation_dataset_id" and "not both" in message
    path, _ = problem(live.post("/v1/jobs", json=job_spec(train_id, validation_dataset_id="ds_nope")), 404)
    assert path == "fit.validation_dataset_id"
    rng = np.random.default_rng(1)
    other_shape = upload(live, rng.normal(size=(20, 5)).astype(np.float32), np.zeros(20, np.int32), "wide")
    path, message = problem(live.post("/v1/jobs", json=job_spec(train_id, validation_dataset_id=other_shape)))
    assert path == "fit.validation_dataset_id" and "(5,)" in message

    for refused in ("LambdaCallback", "ModelCheckpoint", "TensorBoard", "CSVLogger", "BackupAndRestore", "my_module.MyCallback"):
        path, message = problem(live.post("/v1/jobs", json=job_spec(train_id, callbacks=[{"type": "TerminateOnNaN"}, {"type": refused}])))
        assert path == "fit.callbacks[1].type" and refused in message
    path, _ = problem(live.post("/v1/jobs", json=job_spec(train_id, callbacks=[{"type": "EarlyStopping", "patience": -1}])))
    assert path == "fit.callbacks[0].patience"
    path, message = problem(live.post("/v1/jobs", json=job_spec(train_id, callbacks=[{"type": "EarlyStopping"}])))
    assert path == "fit.callbacks[0].monitor" and "val_loss" in message
    path, _ = problem(live.post("/v1/jobs", json=job_spec(train_id, validation_split=0.2, callbacks=[{"type": "EarlyStopping", "monitor": "val_auc"}])))
    assert path == "fit.callbacks[0].monitor"
    path, _ = problem(live.post("/v1/jobs", json=job_spec(train_id, class_weight={"0": 1.0, "2": 1.0})))
    assert path == "fit.class_weight"


def test_a_validation_dataset_in_use_cannot_be_deleted(live, datasets):
    train_id, valid_id = datasets
    job_id = live.post("/v1/jobs", json=job_spec(train_id, epochs=30, validation_dataset_id=valid_id)).json()["id"]
    assert live.delete(f"/v1/datasets/{valid_id}").status_code == 409
    live.post(f"/v1/jobs/{job_id}/cancel")
    job = wait_until_done(live, job_id)
    assert job["status"] == "cancelled" and job["stop_reason"] == "cancelled"
    assert live.delete(f"/v1/datasets/{valid_id}").status_code == 204
