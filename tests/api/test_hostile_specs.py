"""Specs that try to run code or read server files get 422 before Keras sees them, and nothing runs."""
import copy
import io
import json

import numpy as np
import pytest

from tests.api.test_jobs import job_count, tutorial_job


@pytest.fixture
def marker(tmp_path):
    """A file each payload would create if any of it ran."""
    return tmp_path / "pwned"


def sequential_json(layers: list[dict]) -> dict:
    return {
        "module": "keras", "class_name": "Sequential", "registered_name": None,
        "config": {"name": "seq", "layers": [
            {"module": "keras.layers", "class_name": "InputLayer", "registered_name": None, "config": {"batch_shape": [None, 1], "name": "in"}},
            *layers,
        ]},
    }


def dense_with(**overrides) -> dict:
    config = {"units": 2, "name": "d"} | overrides
    return {"module": "keras.layers", "class_name": "Dense", "registered_name": None, "config": config}


HOSTILE_LAYERS = {
    "lambda layer": {"type": "Lambda", "function": "lambda x: __import__('os').system('touch {marker}')"},
    "saved-model layer reads a server path": {"type": "TFSMLayer", "filepath": "/etc", "call_endpoint": "serve"},
    "vocabulary file": {"type": "StringLookup", "vocabulary": "/etc/passwd"},
    "text vectorization vocabulary file": {"type": "TextVectorization", "vocabulary": "{marker}"},
    "initializer from another module": {"type": "Dense", "units": 2, "kernel_initializer": {"module": "os", "class_name": "system", "config": {"command": "touch {marker}"}}},
    "custom registered object": {"type": "Dense", "units": 2, "kernel_regularizer": {"module": "mypkg", "class_name": "Evil", "registered_name": "mypkg>Evil", "config": {}}},
    "activation as a lambda": {"type": "Dense", "units": 2, "activation": {"class_name": "__lambda__", "config": {"code": "touch {marker}"}}},
}

HOSTILE_KERAS_JSON = {
    "builtins.eval (CVE-2025-1550)": sequential_json([{"module": "builtins", "class_name": "eval", "registered_name": None, "config": "__import__('os').system('touch {marker}')"}]),
    "keras.utils.get_file (CVE-2025-8747)": sequential_json([{"module": "keras.utils", "class_name": "get_file", "registered_name": None, "config": {"fname": "{marker}", "origin": "file:///etc/passwd"}}]),
    "enable_unsafe_deserialization (CVE-2025-9906)": sequential_json([{"module": "keras.config", "class_name": "enable_unsafe_deserialization", "registered_name": None, "config": {}}]),
    "lambda layer in to_json output": sequential_json([{"module": "keras.layers", "class_name": "Lambda", "registered_name": None, "config": {"function": {"class_name": "__lambda__", "config": {"code": "touch {marker}"}}}}]),
    "nested initializer module": sequential_json([dense_with(kernel_initializer={"module": "subprocess", "class_name": "run", "config": {"args": ["touch", "{marker}"]}})]),
    "function naming a non-Keras callable": sequential_json([dense_with(activation={"module": "keras.activations", "class_name": "function", "config": "eval", "registered_name": "eval"})]),
}


def with_marker(value, marker):
    return json.loads(json.dumps(value).replace("{marker}", str(marker)))


@pytest.mark.parametrize("name", HOSTILE_LAYERS)
def test_hostile_layer_is_refused_and_nothing_runs(client, settings, example_dataset, marker, name):
    spec = tutorial_job(example_dataset["id"])
    spec["model"]["layers"].insert(1, with_marker(HOSTILE_LAYERS[name], marker))
    response = client.post("/v1/jobs", json=spec)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["path"].startswith("model.layers[1]")
    assert not marker.exists()
    assert job_count(settings) == 0


@pytest.mark.parametrize("name", HOSTILE_KERAS_JSON)
def test_hostile_keras_json_is_refused_and_nothing_runs(client, settings, example_dataset, marker, name):
    spec = tutorial_job(example_dataset["id"])
    spec["model"] = {"keras_json": json.dumps(with_marker(HOSTILE_KERAS_JSON[name], marker))}
    response = client.post("/v1/jobs", json=spec)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["path"].startswith("model.keras_json")
    assert not marker.exists()
    assert job_count(settings) == 0


@pytest.mark.parametrize(
    ("section", "value", "path"),
    [
        ("optimizer", {"type": "Adam", "learning_rate": {"module": "builtins", "class_name": "exec", "config": "x"}}, "compile.optimizer.learning_rate"),
        ("loss", {"type": "Evil"}, "compile.loss.type"),
        ("metrics", [{"type": "Accuracy", "dtype": {"module": "os", "class_name": "popen", "config": {}}}], "compile.metrics[0].dtype"),
    ],
)
def test_hostile_compile_objects_are_refused(client, settings, example_dataset, section, value, path):
    spec = tutorial_job(example_dataset["id"])
    spec["compile"][section] = value
    response = client.post("/v1/jobs", json=spec)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["path"].startswith(path)
    assert job_count(settings) == 0


def test_ordinary_layers_stay_available(client):
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    np.savez(buffer, x=rng.random((16, 8, 8, 1), dtype=np.float32), y=rng.integers(0, 3, 16))
    dataset = client.post("/v1/datasets", files={"file": ("img.npz", buffer.getvalue())}).json()
    layers = [
        {"type": "Conv2D", "filters": 4, "kernel_size": 3, "activation": "relu", "kernel_regularizer": {"module": "keras.regularizers", "class_name": "L2", "config": {"l2": 0.01}}},
        {"type": "BatchNormalization"},
        {"type": "MaxPooling2D"},
        {"type": "Reshape", "target_shape": [9, 4]},
        {"type": "LSTM", "units": 4},
        {"type": "Dropout", "rate": 0.2},
        {"type": "Dense", "units": 3, "activation": "softmax", "kernel_initializer": "he_normal"},
    ]
    spec = {"dataset_id": dataset["id"], "model": {"layers": copy.deepcopy(layers)},
            "compile": {"optimizer": {"type": "AdamW", "weight_decay": 0.01}, "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy", {"type": "SparseTopKCategoricalAccuracy", "k": 2}]},
            "fit": {"epochs": 1}}
    response = client.post("/v1/jobs", json=spec)
    assert response.status_code == 202, response.text


# Two Dense(8000) layers in a row hold 64 M weights.
@pytest.mark.parametrize(
    ("mutate", "path", "words"),
    [
        (lambda s: s["fit"].update(epochs=10**6), "fit.epochs", "less than or equal"),
        (lambda s: s["fit"].update(batch_size=10**7), "fit.batch_size", "less than or equal"),
        (lambda s: s["model"].update(layers=[{"type": "Dense", "units": 2}] * 501), "model.layers", "at most 500"),
        (lambda s: s["model"]["layers"].__setitem__(slice(1, 1), [{"type": "Dense", "units": 8000}] * 2), "model", "parameters; the limit is 50,000,000"),
    ],
)
def test_resource_caps_are_clear_422s(client, settings, example_dataset, mutate, path, words):
    spec = tutorial_job(example_dataset["id"])
    mutate(spec)
    response = client.post("/v1/jobs", json=spec)
    assert response.status_code == 422, response.text
    error = response.json()["errors"][0]
    assert error["path"] == path and words in error["message"], error
    assert job_count(settings) == 0
