"""Functional models with several inputs or outputs, fed arrays by name: training, resume, streaming
and the submit-time check."""
import json

import numpy as np
import pytest

from app.specs import TrainingSpec
from app.storage import LocalStore
from app.training.checkpoint import Checkpoint
from app.training.trainer import EpochReporter, Outcome, train
from app.training.validate import check_spec
from tests.training.test_trainer import HandBackAfter, RecordingHooks


def two_inputs_json() -> dict:
    import keras

    a, b = keras.Input((2,), name="a"), keras.Input((3,), name="b")
    hidden = keras.layers.Dense(8, activation="relu")(keras.layers.Concatenate()([a, b]))
    hidden = keras.layers.Dropout(0.2)(hidden)
    out = keras.layers.Dense(2, activation="softmax", name="out")(hidden)
    return json.loads(keras.Model([a, b], out).to_json())


def two_outputs_json() -> dict:
    import keras

    x = keras.Input((2,), name="features")
    hidden = keras.layers.Dense(8, activation="relu")(x)
    out_a = keras.layers.Dense(2, activation="softmax", name="out_a")(hidden)
    out_b = keras.layers.Dense(1, name="out_b")(hidden)
    return json.loads(keras.Model(x, [out_a, out_b]).to_json())


def two_inputs_spec(**fit) -> TrainingSpec:
    return TrainingSpec.model_validate(
        {
            "model": {"keras_json": two_inputs_json()},
            "compile": {"optimizer": {"type": "Adam", "learning_rate": 0.01}, "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]},
            "fit": {"epochs": 6, "batch_size": 16, "validation_split": 0.2, "seed": 3, **fit},
        }
    )


def two_outputs_spec(**fit) -> TrainingSpec:
    return TrainingSpec.model_validate(
        {
            "model": {"keras_json": two_outputs_json()},
            "compile": {
                "optimizer": {"type": "Adam", "learning_rate": 0.01},
                "loss": {"out_a": "sparse_categorical_crossentropy", "out_b": "mse"},
                "metrics": {"out_a": ["accuracy"], "out_b": ["mae"]},
            },
            "fit": {"epochs": 3, "batch_size": 16, "validation_split": 0.2, **fit},
        }
    )


@pytest.fixture
def two_inputs():
    rng = np.random.default_rng(2)
    x = {"a": rng.normal(size=(200, 2)).astype(np.float32), "b": rng.normal(size=(200, 3)).astype(np.float32)}
    y = ((x["a"][:, 0] + x["b"][:, 1]) > 0).astype(np.int32)
    return x, y


@pytest.fixture
def two_outputs():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 2)).astype(np.float32)
    y = {"out_a": (x[:, 0] > 0).astype(np.int32), "out_b": (x[:, 0] - x[:, 1]).astype(np.float32)}
    return x, y


def test_two_input_model_trains_on_arrays_by_input_name(two_inputs, tmp_path):
    import keras

    x, y = two_inputs
    hooks = RecordingHooks()
    assert train(two_inputs_spec(), x, y, reporter=EpochReporter(hooks), model_path=tmp_path / "m.keras") is Outcome.COMPLETED
    assert set(hooks.rows[0][1]) == {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"}
    assert hooks.rows[-1][1]["loss"] < hooks.rows[0][1]["loss"]
    model = keras.models.load_model(tmp_path / "m.keras")
    assert [t.name for t in model.inputs] == ["a", "b"]


def test_two_output_model_reports_per_output_metrics_under_keras_names(two_outputs, tmp_path):
    x, y = two_outputs
    hooks = RecordingHooks()
    assert train(two_outputs_spec(), x, y, reporter=EpochReporter(hooks), model_path=tmp_path / "m.keras") is Outcome.COMPLETED
    expected = {"loss", "out_a_loss", "out_b_loss", "out_a_accuracy", "out_b_mae"}
    assert set(hooks.rows[0][1]) == expected | {f"val_{name}" for name in expected} | {"learning_rate"}


def test_a_two_input_run_resumed_from_its_checkpoint_matches_an_uninterrupted_run_exactly(two_inputs, tmp_path):
    x, y = two_inputs
    whole = RecordingHooks()
    assert train(two_inputs_spec(), x, y, reporter=EpochReporter(whole), model_path=tmp_path / "a.keras") is Outcome.COMPLETED

    checkpoint = Checkpoint(LocalStore(tmp_path), "ckpt", tmp_path / "scratch")
    first = HandBackAfter(3)
    outcome = train(two_inputs_spec(), x, y, reporter=EpochReporter(first), model_path=tmp_path / "b.keras", checkpoint=checkpoint)
    assert outcome is Outcome.HANDED_BACK and [r[0] for r in first.rows] == [1, 2, 3]
    rest = RecordingHooks()
    outcome = train(two_inputs_spec(), x, y, reporter=EpochReporter(rest), model_path=tmp_path / "b.keras", checkpoint=checkpoint)
    assert outcome is Outcome.COMPLETED and [r[0] for r in rest.rows] == [4, 5, 6]
    assert [r[1] for r in first.rows + rest.rows] == [r[1] for r in whole.rows]


def test_streamed_named_arrays_give_the_in_memory_numbers(two_outputs, tmp_path):
    x, y = two_outputs
    in_memory = RecordingHooks()
    train(two_outputs_spec(), x, y, reporter=EpochReporter(in_memory), model_path=tmp_path / "a.keras")
    streamed = RecordingHooks()
    train(two_outputs_spec(), x, y, reporter=EpochReporter(streamed), model_path=tmp_path / "b.keras", in_memory=False)
    for a, b in zip(in_memory.rows, streamed.rows, strict=True):
        assert a[1] == pytest.approx(b[1], rel=1e-5, abs=1e-6)


def test_spec_check_accepts_matching_names(two_inputs, two_outputs):
    x, y = two_inputs
    assert check_spec(two_inputs_spec().model_dump(mode="json"), {k: v[:8] for k, v in x.items()}, y[:8]) == []
    x, y = two_outputs
    assert check_spec(two_outputs_spec().model_dump(mode="json"), x[:8], {k: v[:8] for k, v in y.items()}) == []


def test_spec_check_names_input_output_and_per_output_loss_mismatches(two_inputs, two_outputs):
    x, y = two_inputs
    renamed = {"a": x["a"][:8], "c": x["b"][:8]}
    problems = check_spec(two_inputs_spec().model_dump(mode="json"), renamed, y[:8])
    assert problems[0]["path"] == "model.keras_json" and "x_c" in problems[0]["message"]
    problems = check_spec(two_inputs_spec().model_dump(mode="json"), x["a"][:8], y[:8])
    assert problems[0]["path"] == "model.keras_json" and "2 inputs (a, b)" in problems[0]["message"]

    x, y = two_outputs
    sample_y = {k: v[:8] for k, v in y.items()}
    problems = check_spec(two_outputs_spec().model_dump(mode="json"), x[:8], y["out_a"][:8])
    assert problems[0]["path"] == "model" and "2 outputs (out_a, out_b)" in problems[0]["message"]
    bad = two_outputs_spec().model_dump(mode="json")
    bad["compile"]["loss"] = {"out_a": "sparse_categorical_crossentropy", "out_c": "mse"}
    assert check_spec(bad, x[:8], sample_y)[0]["path"] == "compile.loss.out_c"
    bad["compile"]["loss"] = {"out_a": "sparse_categorical_crossentropy"}
    assert check_spec(bad, x[:8], sample_y)[0]["path"] == "compile.loss.out_b"
    bad = two_outputs_spec().model_dump(mode="json")
    bad["compile"]["metrics"] = {"nope": ["mae"]}
    assert check_spec(bad, x[:8], sample_y)[0]["path"] == "compile.metrics.nope"
    bad = two_outputs_spec().model_dump(mode="json")
    bad["compile"]["metrics"] = {"out_b": ["no_such_metric"]}
    assert check_spec(bad, x[:8], sample_y)[0]["path"] == "compile.metrics.out_b[0]"


def test_class_weight_is_refused_for_several_outputs(two_outputs):
    x, y = two_outputs
    problems = check_spec(two_outputs_spec(class_weight={"0": 1.0, "1": 2.0}).model_dump(mode="json"), x[:8], {k: v[:8] for k, v in y.items()})
    assert problems[0]["path"] == "fit.class_weight"


def test_normalize_is_refused_for_named_inputs(two_inputs):
    x, y = two_inputs
    problems = check_spec(two_inputs_spec(normalize="minmax").model_dump(mode="json"), {k: v[:8] for k, v in x.items()}, y[:8])
    assert problems[0]["path"] == "fit.normalize"
