"""The helper's Keras side, run in this process: the signature read without Keras matches the
loaded model, predictions equal model.predict, evaluate equals model.evaluate, models are cached."""

import keras
import numpy as np
import pytest

from app.inference import helper
from app.inference.signature import ModelInput, model_stamp, read_signature
from app.specs import TUTORIAL_COMPILE, TUTORIAL_FIT, TUTORIAL_LAYERS, TrainingSpec
from app.training.builder import build_model, compile_model


@pytest.fixture(scope="module")
def tutorial(tmp_path_factory):
    spec = TrainingSpec.model_validate({"model": {"layers": TUTORIAL_LAYERS}, "compile": TUTORIAL_COMPILE, "fit": TUTORIAL_FIT})
    rng = np.random.default_rng(0)
    x = rng.uniform(13, 100, size=(300, 1)).astype(np.float32)
    y = (x[:, 0] > 60).astype(np.int32)
    model = build_model(spec, (1,), x)
    compile_model(model, spec.compile)
    model.fit(x, y, epochs=2, batch_size=10, verbose=0)
    folder = tmp_path_factory.mktemp("model")
    path = folder / "tutorial.keras"
    model.save(path)
    np.save(folder / "x.npy", x)
    np.save(folder / "y.npy", y)
    helper.warm_up(64 * 1024**2)
    return path, folder, x, y


def test_signature_read_without_keras_matches_the_loaded_model(tutorial, tmp_path):
    path = tutorial[0]
    loaded = keras.models.load_model(path).inputs[0]  # named input_layer, or input_layer_N after other models
    assert read_signature(path).inputs == (ModelInput(loaded.name, (1,), "float32"),)
    age, dose = keras.Input((1,), name="age"), keras.Input((2,), name="dose")
    two = keras.Model({"age": age, "dose": dose}, keras.layers.Dense(1)(keras.layers.Concatenate()([age, dose])))
    two.save(tmp_path / "two.keras")
    assert [(i.name, i.shape) for i in read_signature(tmp_path / "two.keras").inputs] == [("age", (1,)), ("dose", (2,))]
    sequential = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    sequential.save(tmp_path / "seq.keras")
    assert read_signature(tmp_path / "seq.keras").inputs[0].shape == (4,)


def test_predictions_equal_model_predict_and_the_second_call_hits_the_cache(tutorial):
    path, _, _, _ = tutorial
    stamp = model_stamp(path)
    rows = np.array([[20.0], [90.0], [55.5]], dtype=np.float32)
    name = read_signature(path).inputs[0].name
    first, outputs = helper.predict_blobs(stamp, {name: helper.to_blob(rows)})
    second, _ = helper.predict_blobs(stamp, {name: helper.to_blob(rows)})
    expected = keras.models.load_model(path).predict(rows, verbose=0)
    assert (first, second) == ("miss", "hit")
    np.testing.assert_allclose(helper.from_blob(outputs[""]), expected, atol=1e-6, rtol=0)


def test_file_predictions_and_evaluate_equal_keras(tutorial, tmp_path):
    path, folder, x, y = tutorial
    stamp = model_stamp(path)
    model = keras.models.load_model(path)
    name = read_signature(path).inputs[0].name
    _, rows, written = helper.predict_files(stamp, {name: str(folder / "x.npy")}, str(tmp_path / "p.npy"), "npy")
    assert (rows, written) == (len(x), "npy")
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), model.predict(x, verbose=0), atol=1e-6, rtol=0)
    helper.predict_files(stamp, {name: str(folder / "x.npy")}, str(tmp_path / "p.csv"), "csv")
    csv = np.loadtxt(tmp_path / "p.csv", delimiter=",", skiprows=1, dtype=np.float32)
    np.testing.assert_allclose(csv, model.predict(x, verbose=0), atol=1e-6, rtol=0)
    _, logs, samples = helper.evaluate_files(stamp, str(folder / "x.npy"), str(folder / "y.npy"))
    expected = model.evaluate(x, y, verbose=0, return_dict=True)
    assert samples == len(x) and set(logs) == set(expected)
    for name, value in expected.items():
        assert logs[name] == pytest.approx(value, abs=1e-6)
