"""Every form a Keras user writes a model in, built by real Keras, with data and a compile spec that fit it.

Both the submit-time tests (tests/api/test_keras_forms.py) and the trained-by-a-real-worker tests
(tests/integration/test_keras_forms_e2e.py) take their models from here, so the two walk the same forms.
"""

import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SAMPLES = 24
FEATURES = 4
CLASSES = 3
HIDDEN_UNITS = 8


@dataclass(frozen=True)
class Form:
    name: str
    build: Callable[[], Any]  # a keras.Model, built when asked: importing this module imports no Keras
    arrays: dict[str, np.ndarray]
    compile: dict[str, Any] = field(
        default_factory=lambda: {"optimizer": "adam", "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]}
    )
    def keras_json(self) -> str:
        return self.build().to_json()

    def hidden_width_path(self) -> str:
        """The spec path of the first hidden layer's `units` in this model's to_json(), for a sweep to search."""
        return "model.keras_json" + _path_to_units(json.loads(self.keras_json()), HIDDEN_UNITS)

    def npz(self) -> bytes:
        buffer = io.BytesIO()
        np.savez(buffer, **self.arrays)
        return buffer.getvalue()

    def inputs(self) -> dict[str, np.ndarray]:
        """The dataset's features by input name, as /predict and Keras' predict take them."""
        if "x" in self.arrays:
            return {"": self.arrays["x"]}
        return {name[2:]: value for name, value in self.arrays.items() if name.startswith("x_")}


def _path_to_units(node: Any, units: int) -> str:
    if isinstance(node, dict):
        if node.get("class_name") == "Dense" and node["config"].get("units") == units:
            return ".config.units"
        items: Any = node.items()
    elif isinstance(node, list):
        items = ((f"[{index}]", item) for index, item in enumerate(node))
    else:
        return ""
    for key, value in items:
        found = _path_to_units(value, units)
        if found:
            return (key if key.startswith("[") else f".{key}") + found
    return ""


def _rng() -> np.random.Generator:
    return np.random.default_rng(7)


def _plain_arrays() -> dict[str, np.ndarray]:
    rng = _rng()
    return {"x": rng.normal(size=(SAMPLES, FEATURES)).astype(np.float32), "y": np.arange(SAMPLES) % CLASSES}


def _two_input_arrays(*outputs: str) -> dict[str, np.ndarray]:
    rng = _rng()
    arrays = {
        "x_left": rng.normal(size=(SAMPLES, FEATURES)).astype(np.float32),
        "x_right": rng.normal(size=(SAMPLES, FEATURES)).astype(np.float32),
    }
    if not outputs:
        arrays["y"] = np.arange(SAMPLES) % CLASSES
    if "kind" in outputs:
        arrays["y_kind"] = np.arange(SAMPLES) % CLASSES
    if "size" in outputs:
        arrays["y_size"] = rng.normal(size=(SAMPLES, 1)).astype(np.float32)
    return arrays


def sequential_with_input() -> Any:
    import keras

    return keras.Sequential(
        [keras.Input((FEATURES,)), keras.layers.Dense(HIDDEN_UNITS, activation="relu"), keras.layers.Dense(CLASSES, activation="softmax")]
    )


def sequential_with_input_shape() -> Any:
    """The tutorial's own form: the first layer declares the input."""
    import keras

    return keras.Sequential(
        [
            keras.layers.Dense(HIDDEN_UNITS, activation="relu", input_shape=(FEATURES,)),
            keras.layers.Dense(HIDDEN_UNITS, activation="relu"),
            keras.layers.Dense(CLASSES, activation="softmax"),
        ]
    )


def sequential_with_input_dim() -> Any:
    import keras

    return keras.Sequential(
        [
            keras.layers.Dense(HIDDEN_UNITS, activation="relu", input_dim=FEATURES),
            keras.layers.Dense(HIDDEN_UNITS, activation="relu"),
            keras.layers.Dense(CLASSES, activation="softmax"),
        ]
    )


def sequential_without_input() -> Any:
    """Never built: Keras leaves the input shape to the first call, so the dataset's shape builds it."""
    import keras

    return keras.Sequential([keras.layers.Dense(HIDDEN_UNITS, activation="relu"), keras.layers.Dense(CLASSES, activation="softmax")])


def functional() -> Any:
    import keras

    inputs = keras.Input((FEATURES,))
    hidden = keras.layers.Dense(HIDDEN_UNITS, activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Dense(CLASSES, activation="softmax")(hidden))


def sequential_in_functional() -> Any:
    import keras

    body = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(HIDDEN_UNITS, activation="relu")], name="body")
    inputs = keras.Input((FEATURES,))
    return keras.Model(inputs, keras.layers.Dense(CLASSES, activation="softmax")(body(inputs)))


def functional_in_sequential() -> Any:
    import keras

    inner_in = keras.Input((FEATURES,))
    body = keras.Model(inner_in, keras.layers.Dense(HIDDEN_UNITS, activation="relu")(inner_in), name="body")
    return keras.Sequential([keras.Input((FEATURES,)), body, keras.layers.Dense(CLASSES, activation="softmax")])


def shared_layers() -> Any:
    """One Dense applied to two inputs (a siamese pair): its weights are trained once for both."""
    import keras

    left, right = keras.Input((FEATURES,), name="left"), keras.Input((FEATURES,), name="right")
    encode = keras.layers.Dense(HIDDEN_UNITS, activation="relu", name="encode")
    merged = keras.layers.Concatenate()([encode(left), encode(right)])
    return keras.Model([left, right], keras.layers.Dense(CLASSES, activation="softmax", name="kind")(merged))


def _two_in_two_out() -> tuple[Any, Any, Any, Any]:
    import keras

    left, right = keras.Input((FEATURES,), name="left"), keras.Input((FEATURES,), name="right")
    hidden = keras.layers.Dense(HIDDEN_UNITS, activation="relu")(keras.layers.Concatenate()([left, right]))
    kind = keras.layers.Dense(CLASSES, activation="softmax", name="kind")(hidden)
    size = keras.layers.Dense(1, name="size")(hidden)
    return left, right, kind, size


def outputs_as_list() -> Any:
    import keras

    left, right, kind, size = _two_in_two_out()
    return keras.Model([left, right], [kind, size])


def outputs_as_dict() -> Any:
    import keras

    left, right, kind, size = _two_in_two_out()
    return keras.Model({"left": left, "right": right}, {"kind": kind, "size": size})


PER_OUTPUT_COMPILE: dict[str, Any] = {
    "optimizer": "adam",
    "loss": {"kind": "sparse_categorical_crossentropy", "size": {"type": "Huber", "delta": 0.5}},
    "loss_weights": {"kind": 1.0, "size": 0.25},
    "metrics": {"kind": ["accuracy", {"type": "SparseTopKCategoricalAccuracy", "k": 2}], "size": ["mae"]},
}

FORMS: list[Form] = [
    Form("Sequential with keras.Input", sequential_with_input, _plain_arrays()),
    Form("Sequential with input_shape=", sequential_with_input_shape, _plain_arrays()),
    Form("Sequential with input_dim=", sequential_with_input_dim, _plain_arrays()),
    Form("Sequential with no input shape", sequential_without_input, _plain_arrays()),
    Form("functional", functional, _plain_arrays()),
    Form("Sequential inside functional", sequential_in_functional, _plain_arrays()),
    Form("functional inside Sequential", functional_in_sequential, _plain_arrays()),
    Form("shared layers", shared_layers, _two_input_arrays()),
    Form(
        "two inputs, outputs as a list",
        outputs_as_list,
        _two_input_arrays("kind", "size"),
        PER_OUTPUT_COMPILE,
    ),
    Form(
        "two inputs, outputs as a dict",
        outputs_as_dict,
        _two_input_arrays("kind", "size"),
        PER_OUTPUT_COMPILE,
    ),
]
