"""Every model form a Keras user writes, sent as its own `to_json()` (a string and parsed), passes the
submit-time check as it is: no `fit.normalize` to wrap it in a functional model first."""

import json

import pytest

from tests.api.test_datasets import upload
from tests.keras_forms import FORMS, Form


def submit(client, form: Form, keras_json, **fit) -> object:
    dataset = upload(client, form.npz(), filename="data.npz")
    assert dataset.status_code == 201, dataset.text
    spec = {
        "dataset_id": dataset.json()["id"],
        "model": {"keras_json": keras_json},
        "compile": form.compile,
        "fit": {"epochs": 1, "batch_size": 8, **fit},
    }
    return client.post("/v1/jobs", json=spec)


@pytest.mark.parametrize("form", FORMS, ids=[form.name for form in FORMS])
def test_every_model_form_is_accepted_as_a_string_and_parsed(client, form):
    as_string = form.keras_json()
    for keras_json in (as_string, json.loads(as_string)):
        response = submit(client, form, keras_json)
        assert response.status_code == 202, response.text


def test_the_issue_reports_sequential_conv_model_is_accepted(client):
    """The model from the report: a Sequential with keras.Input, no normalize. It answered 500
    ('Sequential' object has no attribute 'output_names')."""
    import keras
    import numpy as np

    from tests.api.test_datasets import npz_bytes

    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(8, 3),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    rng = np.random.default_rng(0)
    content = npz_bytes(x=rng.random((8, 28, 28, 1)).astype(np.float32), y=np.arange(8) % 10)
    dataset = upload(client, content, filename="digits.npz").json()
    spec = {
        "dataset_id": dataset["id"],
        "model": {"keras_json": model.to_json()},
        "compile": {"optimizer": "adam", "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]},
        "fit": {"epochs": 1},
    }
    response = client.post("/v1/jobs", json=spec)
    assert response.status_code == 202, response.text


def test_a_loss_for_an_output_the_model_lacks_names_the_path(client):
    form = next(form for form in FORMS if form.name == "two inputs, outputs as a dict")
    compile_spec = {**form.compile, "loss_weights": {"kind": 1.0, "colour": 2.0}}
    response = submit(client, Form(form.name, form.build, form.arrays, compile_spec), form.keras_json())
    assert response.status_code == 422
    error = response.json()["errors"][0]
    assert error["path"] == "compile.loss_weights.colour" and "kind, size" in error["message"]


def test_normalize_keeps_the_sent_output_names_for_per_output_settings(client):
    """Wrapped for fit.normalize, the model's output was renamed after the inner model, so a loss by the
    sent output's name was refused ("no output named 'kind' (its outputs: functional)")."""
    form = next(form for form in FORMS if form.name == "functional")
    compile_spec = {"optimizer": "adam", "loss": {"head": "sparse_categorical_crossentropy"}, "metrics": {"head": ["accuracy"]}}

    def with_named_head():
        import keras

        model = form.build()
        return keras.Model(model.inputs, keras.layers.Activation("linear", name="head")(model.outputs[0]))

    response = submit(client, Form(form.name, with_named_head, form.arrays, compile_spec), form.keras_json(), normalize="minmax")
    assert response.status_code == 422  # the plain functional form's output is not named head
    response = submit(
        client, Form(form.name, with_named_head, form.arrays, compile_spec), with_named_head().to_json(), normalize="minmax"
    )
    assert response.status_code == 202, response.text


def test_a_sequential_with_per_output_settings_is_told_it_has_one_output(client):
    form = FORMS[0]
    compile_spec = {"optimizer": "adam", "loss": {"dense": "sparse_categorical_crossentropy"}}
    response = submit(client, Form(form.name, form.build, form.arrays, compile_spec), form.keras_json())
    assert response.status_code == 422
    error = response.json()["errors"][0]
    assert error["path"] == "compile.loss" and "one output" in error["message"]


def test_an_optimizer_class_name_keras_cannot_look_up_is_made_from_its_class(client):
    form = FORMS[0]
    response = submit(client, Form(form.name, form.build, form.arrays, {**form.compile, "optimizer": "Lamb"}), form.keras_json())
    assert response.status_code == 202, response.text
