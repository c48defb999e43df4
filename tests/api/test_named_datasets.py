"""Datasets of named inputs and outputs (x_<input> / y_<output> arrays, CSV column groups), and
submitting functional models against them."""
import json

import numpy as np
import pytest

from app.ingest import load_arrays
from tests.api.test_datasets import npz_bytes, stored_entries, upload


def two_inputs_model_json() -> str:
    import keras

    a, b = keras.Input((2,), name="a"), keras.Input((3,), name="b")
    out = keras.layers.Dense(2, activation="softmax", name="out")(keras.layers.Concatenate()([a, b]))
    return keras.Model([a, b], out).to_json()


def named_npz(n: int = 10) -> bytes:
    rng = np.random.default_rng(0)
    return npz_bytes(x_a=rng.random((n, 2)), x_b=rng.random((n, 3)), y=np.arange(n) % 2)


def test_npz_with_arrays_by_input_and_output_name_is_stored_per_array(client, settings):
    rng = np.random.default_rng(0)
    content = npz_bytes(x_a=rng.random((6, 2)), x_b=rng.random(6), y_out_a=np.arange(6) % 2, y_out_b=rng.random(6))
    response = upload(client, content, filename="named.npz")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["n_samples"] == 6 and body["x_shape"] == [2]
    assert [(a["role"], a["name"], a["shape"]) for a in body["arrays"]] == [
        ("x", "a", [2]),
        ("x", "b", [1]),  # one feature per sample becomes (n, 1), as for a plain x
        ("y", "out_a", []),
        ("y", "out_b", []),
    ]
    x, y = load_arrays(settings.datasets_dir, stored_entries(settings)[0])
    assert list(x) == ["a", "b"] and list(y) == ["out_a", "out_b"]
    assert x["b"].shape == (6, 1)


def test_plain_npz_and_csv_have_no_arrays_listing(client):
    assert upload(client, npz_bytes(x=np.zeros((2, 2)), y=np.zeros(2)), filename="a.npz").json()["arrays"] is None
    assert upload(client, b"age,label\n1,0\n2,1\n").json()["arrays"] is None


def test_csv_column_groups_become_named_inputs(client, settings):
    content = b"age@demo,weight@demo,p0@pixels,label,p1@pixels\n20,60,0.1,0,0.2\n70,80,0.3,1,0.4\n"
    response = upload(client, content, target="label")
    assert response.status_code == 201, response.text
    arrays = response.json()["arrays"]
    assert [(a["role"], a["name"], a["shape"]) for a in arrays] == [("x", "demo", [2]), ("x", "pixels", [2]), ("y", None, [])]
    x, y = load_arrays(settings.datasets_dir, stored_entries(settings)[0])
    assert x["demo"].tolist() == [[20.0, 60.0], [70.0, 80.0]]
    np.testing.assert_allclose(x["pixels"], [[0.1, 0.2], [0.3, 0.4]], rtol=1e-6)
    assert y.tolist() == [0, 1]


@pytest.mark.parametrize(
    ("content", "filename", "expected"),
    [
        (b"age@demo,weight,label\n1,2,0\n", "a.csv", "column 'weight': when one feature column names its input"),
        (b"age@1demo,label\n1,0\n", "a.csv", "column 'age@1demo': '1demo' is not a usable input name"),
        (b"age@de-mo,label\n1,0\n", "a.csv", "'de-mo' is not a usable input name"),
        (npz_bytes(x=np.zeros((2, 1)), x_a=np.zeros((2, 1)), y=np.zeros(2)), "a.npz", "has both 'x' and x_a"),
        (npz_bytes(**{"x_a-b": np.zeros((2, 1))}, y=np.zeros(2)), "a.npz", "'a-b' is not a usable input name"),
        (npz_bytes(x_a=np.zeros((2, 1)), x_b=np.zeros((3, 1)), y=np.zeros(2)), "a.npz", "x_a has 2 samples but x_b has 3"),
        (npz_bytes(x_a=np.zeros((2, 1))), "a.npz", "no array 'y'"),
    ],
)
def test_bad_names_and_groups_get_422_and_nothing_is_stored(client, settings, content, filename, expected):
    response = upload(client, content, filename)
    assert response.status_code == 422, response.text
    assert expected in response.json()["detail"]
    assert stored_entries(settings) == []


def test_two_input_model_is_accepted_against_matching_named_arrays(client):
    dataset = upload(client, named_npz(), filename="named.npz").json()
    spec = {
        "dataset_id": dataset["id"],
        "model": {"keras_json": two_inputs_model_json()},
        "compile": {"loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]},
        "fit": {"epochs": 1},
    }
    response = client.post("/v1/jobs", json=spec)
    assert response.status_code == 202, response.text


def test_submit_names_the_mismatch_between_model_inputs_and_dataset_arrays(client):
    rng = np.random.default_rng(0)
    dataset = upload(client, npz_bytes(x_a=rng.random((4, 2)), x_c=rng.random((4, 3)), y=np.arange(4) % 2), filename="n.npz").json()
    spec = {
        "dataset_id": dataset["id"],
        "model": {"keras_json": two_inputs_model_json()},
        "compile": {"loss": "sparse_categorical_crossentropy"},
    }
    response = client.post("/v1/jobs", json=spec)
    assert response.status_code == 422, response.text
    error = response.json()["errors"][0]
    assert error["path"] == "model.keras_json" and "x_c" in error["message"]


def test_normalize_with_named_inputs_is_a_422_at_fit_normalize(client):
    dataset = upload(client, named_npz(), filename="named.npz").json()
    spec = {
        "dataset_id": dataset["id"],
        "model": {"keras_json": json.loads(two_inputs_model_json())},
        "compile": {"loss": "sparse_categorical_crossentropy"},
        "fit": {"normalize": "minmax"},
    }
    response = client.post("/v1/jobs", json=spec)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["path"] == "fit.normalize"


def test_a_validation_dataset_must_have_the_same_named_arrays(client):
    rng = np.random.default_rng(0)
    train = upload(client, named_npz(), filename="named.npz").json()
    other = upload(client, npz_bytes(x_a=rng.random((4, 2)), x_c=rng.random((4, 3)), y=np.arange(4) % 2), filename="o.npz").json()
    spec = {
        "dataset_id": train["id"],
        "model": {"keras_json": two_inputs_model_json()},
        "compile": {"loss": "sparse_categorical_crossentropy"},
        "fit": {"validation_dataset_id": other["id"]},
    }
    response = client.post("/v1/jobs", json=spec)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["path"] == "fit.validation_dataset_id"
    assert "x_c" in response.json()["errors"][0]["message"]
