"""Functional models with two inputs or two outputs, trained by the real worker on datasets of named
arrays, on both back ends: per-output metrics under Keras' names, then evaluate and predict by name."""

import io
import json

import keras
import numpy as np
import pytest

from tests.integration.test_training_e2e import wait_until_done


def npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def upload(live, content: bytes) -> str:
    response = live.post("/v1/datasets", files={"file": ("named.npz", content)})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def downloaded(live, job_id: str, tmp_path) -> keras.Model:
    path = tmp_path / f"{job_id}.keras"
    path.write_bytes(live.get(f"/v1/jobs/{job_id}/model").content)
    return keras.models.load_model(path)


def test_two_input_model_trains_evaluates_and_predicts_by_input_name(live, tmp_path):
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(300, 2)).astype(np.float32), rng.normal(size=(300, 3)).astype(np.float32)
    y = ((a[:, 0] + b[:, 1]) > 0).astype(np.int32)
    dataset_id = upload(live, npz(x_a=a, x_b=b, y=y))
    first, second = keras.Input((2,), name="a"), keras.Input((3,), name="b")
    hidden = keras.layers.Dense(8, activation="relu")(keras.layers.Concatenate()([first, second]))
    model_json = keras.Model([first, second], keras.layers.Dense(2, activation="softmax", name="out")(hidden)).to_json()
    spec = {
        "dataset_id": dataset_id,
        "model": {"keras_json": model_json},
        "compile": {"optimizer": {"type": "Adam", "learning_rate": 0.01}, "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]},
        "fit": {"epochs": 3, "batch_size": 16, "validation_split": 0.2},
    }
    submitted = live.post("/v1/jobs", json=spec)
    assert submitted.status_code == 202, submitted.text
    job = wait_until_done(live, submitted.json()["id"])
    assert job["status"] == "succeeded", job["error"]
    epochs = live.get(f"/v1/jobs/{job['id']}/metrics").json()["epochs"]
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(epochs[-1]["logs"])

    model = downloaded(live, job["id"], tmp_path)
    rows = {"a": a[:4].tolist(), "b": b[:4].tolist()}
    predicted = live.post(f"/v1/jobs/{job['id']}/predict", json={"inputs": rows})
    assert predicted.status_code == 200, predicted.text
    expected = model.predict({"a": a[:4], "b": b[:4]}, verbose=0)
    np.testing.assert_allclose(np.array(predicted.json()["predictions"]), expected, atol=1e-6, rtol=0)
    # The dataset's own naming (x_<input>) works for an uploaded .npz, and a stored dataset predicts by name.
    by_file = live.post(f"/v1/jobs/{job['id']}/predict", files={"file": ("in.npz", npz(x_a=a[:4], x_b=b[:4]))})
    assert by_file.status_code == 200, by_file.text
    np.testing.assert_allclose(np.load(io.BytesIO(by_file.content)), expected, atol=1e-6, rtol=0)
    by_dataset = live.post(f"/v1/jobs/{job['id']}/predict", json={"dataset_id": dataset_id})
    assert by_dataset.status_code == 200, by_dataset.text
    assert np.load(io.BytesIO(by_dataset.content)).shape == (300, 2)

    evaluated = live.post(f"/v1/jobs/{job['id']}/evaluate", json={"dataset_id": dataset_id})
    assert evaluated.status_code == 200, evaluated.text
    reference = model.evaluate({"a": a, "b": b}, y, verbose=0, return_dict=True)
    assert evaluated.json()["samples"] == 300
    for name, value in reference.items():
        assert evaluated.json()[name] == pytest.approx(value, abs=1e-5), name


def test_two_output_model_reports_per_output_metrics_and_predicts_each_output(live, tmp_path):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(300, 2)).astype(np.float32)
    y_a, y_b = (x[:, 0] > 0).astype(np.int32), (x[:, 0] - x[:, 1]).astype(np.float32)
    dataset_id = upload(live, npz(x_features=x, y_out_a=y_a, y_out_b=y_b))
    inputs = keras.Input((2,), name="features")
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    outputs = [keras.layers.Dense(2, activation="softmax", name="out_a")(hidden), keras.layers.Dense(1, name="out_b")(hidden)]
    spec = {
        "dataset_id": dataset_id,
        "model": {"keras_json": json.loads(keras.Model(inputs, outputs).to_json())},
        "compile": {
            "optimizer": {"type": "Adam", "learning_rate": 0.01},
            "loss": {"out_a": "sparse_categorical_crossentropy", "out_b": "mse"},
            "metrics": {"out_a": ["accuracy"], "out_b": ["mae"]},
        },
        "fit": {"epochs": 3, "batch_size": 16, "validation_split": 0.2},
    }
    submitted = live.post("/v1/jobs", json=spec)
    assert submitted.status_code == 202, submitted.text
    job = wait_until_done(live, submitted.json()["id"])
    assert job["status"] == "succeeded", job["error"]
    logs = live.get(f"/v1/jobs/{job['id']}/metrics").json()["epochs"][-1]["logs"]
    per_output = {"out_a_loss", "out_b_loss", "out_a_accuracy", "out_b_mae"}
    assert per_output | {f"val_{name}" for name in per_output} | {"loss", "val_loss"} <= set(logs)
    assert "out_b_mae: " in live.get(f"/v1/jobs/{job['id']}/log").text

    model = downloaded(live, job["id"], tmp_path)
    predicted = live.post(f"/v1/jobs/{job['id']}/predict", json={"inputs": {"features": x[:3].tolist()}})
    assert predicted.status_code == 200, predicted.text
    expected = model.predict(x[:3], verbose=0)
    body = predicted.json()["predictions"]
    np.testing.assert_allclose(np.array(body["out_a"]), expected[0], atol=1e-6, rtol=0)
    np.testing.assert_allclose(np.array(body["out_b"]), expected[1], atol=1e-6, rtol=0)
    # Files in, files out: a .npz with one array per output, or CSV columns named by output.
    by_file = live.post(f"/v1/jobs/{job['id']}/predict", files={"file": ("in.npz", npz(x=x[:3]))})
    assert by_file.status_code == 200, by_file.text
    assert by_file.headers["content-disposition"].endswith('-predictions.npz"')
    with np.load(io.BytesIO(by_file.content)) as answer:
        assert sorted(answer.files) == ["out_a", "out_b"]
        np.testing.assert_allclose(answer["out_a"], expected[0], atol=1e-6, rtol=0)
        np.testing.assert_allclose(answer["out_b"], expected[1], atol=1e-6, rtol=0)
    as_csv = live.post(f"/v1/jobs/{job['id']}/predict", json={"dataset_id": dataset_id, "format": "csv"})
    assert as_csv.status_code == 200, as_csv.text
    lines = as_csv.text.splitlines()
    assert lines[0] == '"out_a_0","out_a_1","out_b_0"' and len(lines) == 301

    evaluated = live.post(f"/v1/jobs/{job['id']}/evaluate", json={"dataset_id": dataset_id})
    assert evaluated.status_code == 200, evaluated.text
    reference = model.evaluate(x, {"out_a": y_a, "out_b": y_b}, verbose=0, return_dict=True)
    for name, value in reference.items():
        assert evaluated.json()[name] == pytest.approx(value, abs=1e-5), name
