"""A real job through a real Celery worker, on the embedded default and on PostgreSQL + Redis."""
import copy
import io
import time

import numpy as np

from app.specs import TUTORIAL_COMPILE, TUTORIAL_FIT, TUTORIAL_LAYERS

TERMINAL = {"succeeded", "failed", "cancelled"}


def tutorial(dataset_id: str, **fit) -> dict:
    return {
        "dataset_id": dataset_id,
        "model": {"layers": copy.deepcopy(TUTORIAL_LAYERS)},
        "compile": copy.deepcopy(TUTORIAL_COMPILE),
        "fit": {**TUTORIAL_FIT, **fit},
    }


def wait_until_done(client, job_id: str, timeout_s: float = 120) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in TERMINAL:
            return job
        time.sleep(0.1)
    raise TimeoutError(f"job {job_id} still {job['status']} after {timeout_s}s")


def test_tutorial_trains_and_every_epoch_is_visible_while_running(live, tmp_path):
    dataset = live.post("/v1/datasets/examples/side-effects").json()
    job_id = live.post("/v1/jobs", json=tutorial(dataset["id"])).json()["id"]

    seen_while_running: set[int] = set()
    after = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        metrics = live.get(f"/v1/jobs/{job_id}/metrics", params={"after": after}).json()
        for row in metrics["epochs"]:
            assert row["epoch"] == after + 1  # in order, none skipped, none twice
            after = row["epoch"]
            if metrics["status"] == "running":
                seen_while_running.add(after)
        if metrics["status"] in TERMINAL:
            break
        time.sleep(0.05)

    job = wait_until_done(live, job_id)
    assert job["status"] == "succeeded", job["error"]
    assert after == 20 and job["epochs_completed"] == 20
    assert seen_while_running, "no epoch row was visible before the job finished"
    assert [h["status"] for h in job["history"]] == ["queued", "running", "succeeded"]
    assert job["worker"] and job["started_at"] and job["finished_at"]

    epochs = live.get(f"/v1/jobs/{job_id}/metrics").json()["epochs"]
    losses = [e["logs"]["loss"] for e in epochs]
    assert losses[-1] < losses[0] * 0.6
    assert epochs[-1]["logs"]["accuracy"] >= 0.85
    assert all(e["duration_s"] > 0 for e in epochs)
    log = live.get(f"/v1/jobs/{job_id}/log").text.splitlines()
    assert len(log) == 20 and log[0].startswith("Epoch 1/20 - ") and " - loss: " in log[0]

    response = live.get(f"/v1/jobs/{job_id}/model")
    assert response.status_code == 200
    import keras

    path = tmp_path / "model.keras"
    path.write_bytes(response.content)
    model = keras.models.load_model(path)
    # Normalization is inside the model, so it takes raw ages: old patients → side effects.
    predictions = model.predict(np.array([[20.0], [90.0]], dtype=np.float32), verbose=0)
    assert predictions.argmax(axis=1).tolist() == [0, 1]


def test_model_sent_as_keras_to_json_trains(live):
    import keras

    dataset = live.post("/v1/datasets/examples/side-effects").json()
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(2, activation="softmax")])
    spec = tutorial(dataset["id"], epochs=3)
    spec["model"] = {"keras_json": model.to_json()}
    job = wait_until_done(live, live.post("/v1/jobs", json=spec).json()["id"])
    assert job["status"] == "succeeded", job["error"]
    assert job["epochs_completed"] == 3


def test_diverging_job_fails_readably_and_the_worker_serves_the_next(live):
    buffer = io.BytesIO()
    rng = np.random.default_rng(0)
    np.savez(buffer, x=rng.normal(size=(64, 4)).astype(np.float32) * 1e3, y=rng.normal(size=(64,)).astype(np.float32) * 1e3)
    dataset = live.post("/v1/datasets", files={"file": ("big.npz", buffer.getvalue())}).json()
    spec = {
        "dataset_id": dataset["id"],
        "model": {"layers": [{"type": "Dense", "units": 8}, {"type": "Dense", "units": 1}]},
        "compile": {"optimizer": {"type": "SGD", "learning_rate": 1e6}, "loss": "mse"},
        "fit": {"epochs": 5, "batch_size": 8},
    }
    failed = wait_until_done(live, live.post("/v1/jobs", json=spec).json()["id"])
    assert failed["status"] == "failed"
    assert failed["error"]["type"] == "NonFiniteLoss"
    assert "loss became" in failed["error"]["message"]
    assert failed["history"][-1]["status"] == "failed"
    assert failed["error"]["epoch"] == 1
    log = live.get(f"/v1/jobs/{failed['id']}/log").text
    assert "NonFiniteLoss" in log and "Traceback" in log and "app.training.trainer" in log
    assert "/work" not in log and "site-packages" not in log

    spec["compile"]["optimizer"] = "adam"
    spec["fit"]["normalize"] = "standard"
    after = wait_until_done(live, live.post("/v1/jobs", json=spec).json()["id"])
    assert after["status"] == "succeeded", after["error"]
    assert after["worker"] == failed["worker"]  # the same process, TensorFlow still loaded


def test_dataset_in_use_by_an_active_job_cannot_be_deleted(live):
    dataset = live.post("/v1/datasets/examples/side-effects").json()
    job_id = live.post("/v1/jobs", json=tutorial(dataset["id"])).json()["id"]
    response = live.delete(f"/v1/datasets/{dataset['id']}")
    assert response.status_code == 409
    assert "queued or running" in response.json()["detail"]
    assert wait_until_done(live, job_id)["status"] == "succeeded"
    assert live.delete(f"/v1/datasets/{dataset['id']}").status_code == 204
