"""epochly_client.keras against a real worker: the Keras tutorial's script with `model.fit` changed to
`epochly_client.keras.fit`, and each path around it (Ctrl-C, detach/attach, local and refused
callbacks, content-addressed uploads, failures). Jobs stay a few epochs long to keep the suite fast."""

import os
import re
import subprocess
import sys
import threading
import time

import keras
import numpy as np
import pytest
from keras.layers import Dense
from keras.models import Sequential
from keras.optimizers import SGD, Adam

import epochly_client.keras
from app.examples import side_effects
from epochly_client import Client
from epochly_client.keras import InvalidSpec, JobFailed, RemoteFit
from tests.conftest import ROOT

pytestmark = pytest.mark.parametrize("backend", ["embedded"], indirect=True)
EPOCHS = 3


def tutorial_model() -> keras.Model:
    """The tutorial's model and compile call, as it writes them."""
    keras.utils.set_random_seed(0)
    model = Sequential(
        [
            keras.Input(shape=(1,)),
            Dense(units=16, activation="relu"),
            Dense(units=32, activation="relu"),
            Dense(units=2, activation="sigmoid"),
        ]
    )
    model.compile(optimizer=Adam(learning_rate=0.0001), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def tutorial_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The tutorial's samples scaled to 0–1 (its MinMaxScaler), and its labels."""
    samples, labels = side_effects(seed)
    return (samples - samples.min()) / (samples.max() - samples.min()), labels


@pytest.fixture
def client(service):
    with Client(service.url, api_key=service.key) as client:
        yield client


def count(live, path: str) -> int:
    return len(live.get(path, params={"limit": 200}).json()["items"])


def wait_for(live, job_id: str, status: str, timeout_s: float = 60) -> dict:
    deadline = time.monotonic() + timeout_s
    while (job := live.get(f"/v1/jobs/{job_id}").json())["status"] != status:
        assert time.monotonic() < deadline, f"job {job_id} is {job['status']}, not {status}"
        time.sleep(0.1)
    return job


def test_the_plain_client_imports_no_tensorflow(backend):
    code = "import sys, epochly_client; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]


def test_the_readme_python_section_runs_as_written(service):
    section = (ROOT / "README.md").read_text().split("## Python: `model.fit` on Epochly", 1)[1]
    script = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    env = {**os.environ, "EPOCHLY_URL": service.url, "EPOCHLY_API_KEY": service.key}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert [line for line in lines if line.startswith("Epoch ")] == [f"Epoch {e}/20" for e in range(1, 21)]
    accuracy, job_id = next(line for line in lines if " job_" in line).split()
    assert float(accuracy) >= 0.9 and job_id.startswith("job_")


def test_the_tutorial_with_fit_changed_gives_keras_history_and_the_served_model(client, live, capsys):
    scaled_train_samples, train_labels = tutorial_data()
    local = tutorial_model()
    expected = local.fit(x=scaled_train_samples, y=train_labels, batch_size=10, epochs=EPOCHS, shuffle=True, verbose=2)
    capsys.readouterr()

    model = tutorial_model()
    history = epochly_client.keras.fit(
        model, x=scaled_train_samples, y=train_labels, batch_size=10, epochs=EPOCHS, shuffle=True, verbose=2, client=client
    )

    printed = capsys.readouterr().out
    assert [line for line in printed.splitlines() if line.startswith("Epoch ")] == [f"Epoch {e}/{EPOCHS}" for e in (1, 2, 3)]
    assert printed.count("210/210 - ") == EPOCHS  # Keras' own verbose=2 line, one per epoch
    assert isinstance(history, keras.callbacks.History)
    assert history.history.keys() == expected.history.keys() == {"loss", "accuracy"}
    assert history.params == expected.params
    assert history.epoch == expected.epoch == [0, 1, 2]
    assert model.history is history
    recorded = live.get(f"/v1/jobs/{history.job_id}/metrics").json()["epochs"]
    assert history.history["loss"] == [row["logs"]["loss"] for row in recorded]
    assert history.uploaded_bytes > 0

    ages = scaled_train_samples[:50]
    served = np.asarray(live.post(f"/v1/jobs/{history.job_id}/predict", json={"inputs": ages.tolist()}).json()["predictions"])
    np.testing.assert_allclose(model.predict(ages, verbose=0), served, atol=1e-6)
    np.testing.assert_allclose(epochly_client.keras.predict(model, ages, client=client), served, atol=1e-6)
    loss, accuracy = epochly_client.keras.evaluate(model, scaled_train_samples, train_labels, client=client)
    local_loss, local_accuracy = model.evaluate(scaled_train_samples, train_labels, verbose=0)
    assert loss == pytest.approx(local_loss, abs=1e-5) and accuracy == pytest.approx(local_accuracy, abs=1e-6)


def test_a_second_fit_on_the_same_arrays_uploads_nothing(client, live):
    x, y = tutorial_data(seed=11)
    first = epochly_client.keras.fit(tutorial_model(), x, y, batch_size=100, verbose=0, client=client)
    datasets = count(live, "/v1/datasets")
    second = epochly_client.keras.fit(tutorial_model(), x.tolist(), list(y), batch_size=100, verbose=0, client=client)
    assert first.uploaded_bytes > 0
    assert second.uploaded_bytes == 0
    assert count(live, "/v1/datasets") == datasets
    assert live.get(f"/v1/jobs/{first.job_id}").json()["dataset_id"] == live.get(f"/v1/jobs/{second.job_id}").json()["dataset_id"]


def test_a_finite_tf_dataset_is_the_same_upload_and_endless_data_is_refused(client, live, monkeypatch):
    import tensorflow as tf

    x, y = tutorial_data(seed=11)
    batches = tf.data.Dataset.from_tensor_slices((x, y)).batch(64)
    history = epochly_client.keras.fit(tutorial_model(), batches, batch_size=100, verbose=0, client=client)
    assert history.uploaded_bytes == 0  # the arrays of the test above, found by their hash

    jobs = count(live, "/v1/jobs")
    with pytest.raises(ValueError, match="infinite"):
        epochly_client.keras.fit(tutorial_model(), batches.repeat(), client=client)
    with pytest.raises(ValueError, match="generator"):
        epochly_client.keras.fit(tutorial_model(), ((x[i : i + 10], y[i : i + 10]) for i in range(0, 100, 10)), client=client)
    monkeypatch.setattr(epochly_client.keras.data, "MAX_DATASET_BYTES", 1000)
    with pytest.raises(ValueError, match="MAX_DATASET_BYTES"):
        epochly_client.keras.fit(tutorial_model(), batches, client=client)
    assert count(live, "/v1/jobs") == jobs


def test_ctrl_c_cancels_the_job_and_keeps_its_epochs(client, live):
    x, y = tutorial_data()

    def interrupt(epoch, logs):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        epochly_client.keras.fit(
            tutorial_model(),
            x,
            y,
            epochs=200,
            verbose=0,
            name="ctrl-c",
            callbacks=[keras.callbacks.LambdaCallback(on_epoch_end=interrupt)],
            client=client,
        )
    job_id = next(job["id"] for job in live.get("/v1/jobs").json()["items"] if job["name"] == "ctrl-c")
    job = wait_for(live, job_id, "cancelled")
    assert 1 <= job["epochs_completed"] < 200
    assert len(live.get(f"/v1/jobs/{job_id}/metrics").json()["epochs"]) == job["epochs_completed"]


def test_ctrl_c_from_another_thread_while_following_cancels(client, live):
    """The real Ctrl-C: SIGINT's KeyboardInterrupt lands in the main thread wherever it waits."""
    x, y = tutorial_data()
    timer = threading.Timer(3.0, lambda: __import__("_thread").interrupt_main())
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            epochly_client.keras.fit(tutorial_model(), x, y, epochs=300, verbose=0, name="sigint", client=client)
    finally:
        timer.cancel()
    job_id = next(job["id"] for job in live.get("/v1/jobs").json()["items"] if job["name"] == "sigint")
    wait_for(live, job_id, "cancelled")


def test_detach_returns_at_once_and_attach_loads_the_weights(client, live):
    x, y = tutorial_data()
    run = epochly_client.keras.fit(tutorial_model(), x, y, batch_size=50, epochs=EPOCHS, client=client, detach=True)
    assert isinstance(run, RemoteFit)
    assert live.get(f"/v1/jobs/{run.job_id}").json()["status"] in ("queued", "running")

    model = tutorial_model()  # elsewhere, later: a fresh model of the same form
    history = epochly_client.keras.attach(run.job_id, model, verbose=0, client=client)
    assert history.job_id == run.job_id
    assert history.epoch == [0, 1, 2] and history.history.keys() == {"loss", "accuracy"}
    served = live.post(f"/v1/jobs/{run.job_id}/predict", json={"inputs": x[:20].tolist()}).json()["predictions"]
    np.testing.assert_allclose(model.predict(x[:20], verbose=0), served, atol=1e-6)


def test_local_callbacks_get_the_job_logs_and_keras_callbacks_run_on_the_service(client, live):
    x, y = tutorial_data()
    calls: list[tuple] = []
    recorder = keras.callbacks.LambdaCallback(
        on_train_begin=lambda logs: calls.append(("begin",)),
        on_epoch_end=lambda epoch, logs: calls.append(("epoch", epoch, dict(logs))),
        on_train_end=lambda logs: calls.append(("end",)),
    )
    stop = keras.callbacks.EarlyStopping(monitor="loss", min_delta=10.0, patience=1, restore_best_weights=True)
    plateau = keras.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=5)
    history = epochly_client.keras.fit(
        tutorial_model(), x, y, batch_size=100, epochs=10, verbose=0, callbacks=[recorder, stop, plateau], client=client
    )

    job = live.get(f"/v1/jobs/{history.job_id}").json()
    assert job["spec"]["fit"]["callbacks"] == [
        {"type": "EarlyStopping", "monitor": "loss", "min_delta": 10.0, "patience": 1, "mode": "auto", "baseline": None,
         "restore_best_weights": True, "start_from_epoch": 0},
        {"type": "ReduceLROnPlateau", "monitor": "loss", "factor": 0.5, "patience": 5, "mode": "auto", "min_delta": 0.0001,
         "cooldown": 0, "min_lr": 0.0},
    ]  # fmt: skip
    assert job["stop_reason"] == "early_stopping" and job["epochs_completed"] == 2
    recorded = live.get(f"/v1/jobs/{history.job_id}/metrics").json()["epochs"]
    assert calls == [("begin",), *[("epoch", row["epoch"] - 1, row["logs"]) for row in recorded], ("end",)]
    # ReduceLROnPlateau logs the learning rate in Keras too, so the History keeps it
    assert history.history.keys() == {"loss", "accuracy", "learning_rate"}


def test_a_refused_callback_raises_before_any_job_or_upload(client, live, tmp_path):
    x, y = tutorial_data(seed=12)
    jobs, datasets = count(live, "/v1/jobs"), count(live, "/v1/datasets")
    checkpoint = keras.callbacks.ModelCheckpoint(str(tmp_path / "best.keras"))
    with pytest.raises(ValueError, match=r"ModelCheckpoint.*checkpoints every epoch"):
        epochly_client.keras.fit(tutorial_model(), x, y, callbacks=[checkpoint], client=client)
    with pytest.raises(ValueError, match=r"BackupAndRestore.*resumes"):
        epochly_client.keras.fit(tutorial_model(), x, y, callbacks=[keras.callbacks.BackupAndRestore(str(tmp_path))], client=client)
    assert (count(live, "/v1/jobs"), count(live, "/v1/datasets")) == (jobs, datasets)


def test_an_uncompiled_model_gets_the_error_keras_gives(client):
    x, y = tutorial_data()
    model = Sequential([keras.Input(shape=(1,)), Dense(2)])
    with pytest.raises(ValueError) as keras_error:
        model.fit(x, y, verbose=0)
    with pytest.raises(ValueError) as ours:
        epochly_client.keras.fit(model, x, y, client=client)
    assert str(ours.value) == str(keras_error.value)


def test_a_spec_the_service_refuses_names_the_field(client):
    def my_loss(y_true, y_pred):
        return keras.ops.mean(y_pred)

    model = tutorial_model()
    model.compile(optimizer="adam", loss=my_loss)
    x, y = tutorial_data()
    with pytest.raises(InvalidSpec) as refused:
        epochly_client.keras.fit(model, x, y, client=client)
    assert refused.value.path == "compile.loss"
    assert str(refused.value).startswith("compile.loss: ") and "my_loss" in str(refused.value)


def test_a_failed_job_raises_its_error_and_log_tail(client):
    x, y = tutorial_data()
    model = tutorial_model()
    model.compile(optimizer=SGD(learning_rate=1e30), loss="sparse_categorical_crossentropy")
    with pytest.raises(JobFailed, match="NonFiniteLoss") as failed:
        epochly_client.keras.fit(model, x, y, epochs=EPOCHS, verbose=0, client=client)
    assert failed.value.job.status == "failed"
    assert failed.value.log_tail
