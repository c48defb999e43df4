"""What a spec may name: derived from Keras' public namespaces, minus classes that carry code or read files.

Keras' own `safe_mode` has been bypassed repeatedly, so every `class_name`/`module` anywhere in a
submitted config is checked here before Keras deserializes anything.
"""

import inspect
from functools import cache
from typing import Any

import keras

# Classes that run user-supplied code or read server paths.
DENIED_CLASSES = frozenset({"Lambda", "TFSMLayer", "JaxLayer", "FlaxLayer", "TorchModuleWrapper", "__lambda__"})
# Keras serializes plain functions (activations, losses) as class_name "function".
FUNCTION_CLASS = "function"
ALLOWED_MODULE_ROOTS = (
    "keras",
    "keras.layers",
    "keras.initializers",
    "keras.regularizers",
    "keras.constraints",
    "keras.optimizers",
    "keras.optimizers.schedules",
    "keras.losses",
    "keras.metrics",
    "keras.activations",
    "keras.models",
    "keras.src",
)
# Arguments that Keras treats as a file to read when given a string.
PATH_ARGUMENTS = frozenset({"vocabulary", "filepath", "file_path", "path", "idf_weights", "mask_token_file"})
DENIED_MODULE_PARTS = ("utils", "saving", "ops", "backend", "export", "callbacks", "datasets", "applications")


def _public_classes(namespace: Any, base: type) -> dict[str, type]:
    return {
        name: obj
        for name, obj in vars(namespace).items()
        if not name.startswith("_") and inspect.isclass(obj) and issubclass(obj, base) and name not in DENIED_CLASSES
    }


@cache
def layer_classes() -> dict[str, type]:
    return _public_classes(keras.layers, keras.layers.Layer)


@cache
def optimizer_classes() -> dict[str, type]:
    return _public_classes(keras.optimizers, keras.optimizers.Optimizer)


@cache
def schedule_classes() -> dict[str, type]:
    base = keras.optimizers.schedules.LearningRateSchedule
    return {name: cls for name, cls in _public_classes(keras.optimizers.schedules, base).items() if cls is not base}


@cache
def loss_classes() -> dict[str, type]:
    return _public_classes(keras.losses, keras.losses.Loss)


@cache
def metric_classes() -> dict[str, type]:
    return _public_classes(keras.metrics, keras.metrics.Metric)


@cache
def allowed_config_classes() -> frozenset[str]:
    """Every class name a serialized Keras config may mention."""
    names: set[str] = set()
    names |= layer_classes().keys() | optimizer_classes().keys() | loss_classes().keys() | metric_classes().keys()
    names |= _public_classes(keras.initializers, keras.initializers.Initializer).keys()
    names |= _public_classes(keras.regularizers, keras.regularizers.Regularizer).keys()
    names |= _public_classes(keras.constraints, keras.constraints.Constraint).keys()
    names |= _public_classes(keras.optimizers.schedules, keras.optimizers.schedules.LearningRateSchedule).keys()
    names |= {"Sequential", "Functional", "Model", "DTypePolicy", "FloatDTypePolicy", "__keras_tensor__", FUNCTION_CLASS}
    return frozenset(names)


@cache
def allowed_function_names() -> frozenset[str]:
    names: set[str] = set()
    for namespace in (keras.activations, keras.losses, keras.metrics):
        names |= {n for n, obj in vars(namespace).items() if not n.startswith("_") and inspect.isfunction(obj)}
    return frozenset(names)


def unsafe_config_reason(node: Any) -> tuple[str, str] | None:
    """The (relative JSON path, reason) of the first thing in a config that is not plain Keras, else None."""
    if isinstance(node, list):
        for index, item in enumerate(node):
            found = unsafe_config_reason(item)
            if found:
                return f"[{index}]{found[0]}", found[1]
        return None
    if not isinstance(node, dict):
        return None
    class_name = node.get("class_name")
    if class_name is not None:
        if class_name in DENIED_CLASSES:
            return ".class_name", f"{class_name!r} runs arbitrary code and is not allowed"
        if not isinstance(class_name, str) or class_name not in allowed_config_classes():
            return ".class_name", f"{class_name!r} is not a Keras class this service allows"
        if class_name == FUNCTION_CLASS and node.get("config") not in allowed_function_names():
            return ".config", f"function {node.get('config')!r} is not a Keras activation, loss or metric"
        module = node.get("module")
        if module is not None and not _module_allowed(module):
            return ".module", f"module {module!r} is not allowed; only Keras' own modules may be named"
        registered = node.get("registered_name")
        if registered is not None and registered not in (class_name, node.get("config")):
            return ".registered_name", f"custom object {registered!r} is not allowed"
    for key, value in node.items():
        if key in PATH_ARGUMENTS and isinstance(value, str):
            return f".{key}", f"{key} names a file on the server, which cannot be read; pass the values inline (e.g. a list)"
        found = unsafe_config_reason(value)
        if found:
            return f".{key}{found[0]}", found[1]
    return None


def _module_allowed(module: Any) -> bool:
    if not isinstance(module, str):
        return False
    parts = module.split(".")
    if parts[0] != "keras" or any(part in DENIED_MODULE_PARTS for part in parts):
        return False
    return module in ALLOWED_MODULE_ROOTS or module.startswith(("keras.src.", "keras.layers.", "keras.optimizers."))
