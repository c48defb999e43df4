"""Turn a validated spec into a compiled Keras model; every refusal names the JSON path at fault."""

import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import keras
import numpy as np

from app.specs import CompileSpec, NamedObjectSpec, TrainingSpec
from app.training.registry import (
    DENIED_CLASSES,
    layer_classes,
    loss_classes,
    metric_classes,
    optimizer_classes,
    schedule_classes,
    unsafe_config_reason,
)

MAX_PARAMS = 50_000_000
# compile() resolves these against the loss, so they are not in keras.metrics' lookup table.
COMPILE_METRIC_ALIASES = frozenset({"accuracy", "acc", "crossentropy", "ce"})
INPUT_SHAPE_KWARGS = ("input_shape", "batch_input_shape", "batch_shape", "input_dim")


class SpecError(Exception):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


def training_split(n_samples: int, validation_split: float) -> int:
    """How many leading samples Keras trains on (the same formula as `model.fit`)."""
    return math.ceil(n_samples * (1.0 - validation_split))


def build_model(
    spec: TrainingSpec, x_shape: Sequence[int] | Mapping[str, Sequence[int]], x_train: np.ndarray | Mapping[str, np.ndarray]
) -> keras.Model:
    """`x_train` supplies the normalization statistics when `fit.normalize` asks for them. `x_shape` is
    one sample's shape, or each named input's (a dataset of x_<input> arrays)."""
    if isinstance(x_shape, Mapping):
        shapes = {name: tuple(int(d) for d in shape) for name, shape in x_shape.items()}
        if spec.fit.normalize:
            raise SpecError(
                "fit.normalize",
                f"normalize scales one array of features; this dataset has named inputs ({', '.join(shapes)}): "
                "scale them before uploading, or add a Normalization layer to the model",
            )
        if spec.model.keras_json is not None:
            model = _model_from_keras_json_named(spec.model.keras_json, shapes)
        elif len(shapes) == 1:
            ((name, shape),) = shapes.items()
            model = _model_from_layers(spec.model.layers or [], shape, None, input_name=name)
        else:
            raise SpecError(
                "model.layers",
                f"a list of layers takes one input; the dataset has {len(shapes)} named inputs ({', '.join(shapes)}): "
                "give a functional model as model.keras_json",
            )
    else:
        shape = tuple(int(d) for d in x_shape)
        assert not isinstance(x_train, Mapping)
        normalizer = _normalizer(spec.fit.normalize, x_train) if spec.fit.normalize else None
        if spec.model.keras_json is not None:
            model = _model_from_keras_json(spec.model.keras_json, shape, normalizer)
        else:
            model = _model_from_layers(spec.model.layers or [], shape, normalizer)
    if model.count_params() > MAX_PARAMS:
        raise SpecError("model", f"the model has {model.count_params():,} parameters; the limit is {MAX_PARAMS:,}")
    return model


def compile_model(model: keras.Model, spec: CompileSpec, **compile_kwargs: Any) -> None:
    if isinstance(spec.loss, dict):
        _check_output_names("compile.loss", spec.loss, model)
        loss: Any = {name: _loss(value, f"compile.loss.{name}") for name, value in spec.loss.items()}
    else:
        loss = _loss(spec.loss)
    if isinstance(spec.loss_weights, dict):
        _check_output_names("compile.loss_weights", spec.loss_weights, model)
    elif spec.loss_weights is not None and len(spec.loss_weights) != len(model.outputs):
        raise SpecError(
            "compile.loss_weights",
            f"{len(spec.loss_weights)} weights for a model with {len(model.outputs)} outputs ({', '.join(output_names(model))})",
        )
    try:
        model.compile(
            optimizer=_optimizer(spec.optimizer),
            loss=loss,
            loss_weights=spec.loss_weights,
            metrics=_metrics("compile.metrics", spec.metrics, model),
            weighted_metrics=_metrics("compile.weighted_metrics", spec.weighted_metrics, model),
            **compile_kwargs,
        )
    except SpecError:
        raise
    except Exception as exc:  # Keras' own refusal of a combination it cannot compile
        raise SpecError("compile", f"Keras could not compile the model: {clean_error(exc)}") from None


def _metrics(path: str, spec: Any, model: keras.Model) -> Any:
    if isinstance(spec, dict):
        _check_output_names(path, spec, model)
        return {
            name: [_metric(metric, f"{path}.{name}[{index}]") for index, metric in enumerate(values)]
            for name, values in spec.items()
        }
    return [_metric(metric, f"{path}[{index}]") for index, metric in enumerate(spec)]


def output_names(model: keras.Model) -> list[str]:
    """The names Keras gives the model's outputs: its output layers' names. Functional models list
    them as `output_names`; a Sequential has no such attribute, and its one output is its last layer's."""
    return [str(tensor._keras_history.operation.name) for tensor in model.outputs]


def check_outputs(model: keras.Model, y_names: Sequence[str] | None) -> None:
    """The dataset's labels against the model's outputs: one y for a one-output model, or one
    y_<output> array per output name."""
    names = output_names(model)
    if y_names is None:
        if len(names) != 1:
            raise SpecError(
                "model",
                f"the model has {len(names)} outputs ({', '.join(names)}) but the dataset has one array of labels, y; "
                f"upload one y_<output name> array per output ({', '.join(f'y_{n}' for n in names)})",
            )
        return
    if set(y_names) != set(names):
        raise SpecError(
            "model",
            f"the model's outputs are {', '.join(names)} but the dataset's labels are "
            f"{', '.join(f'y_{n}' for n in y_names)}; name one y_<output name> array per output",
        )


def _check_output_names(path: str, per_output: Mapping[str, Any], model: keras.Model) -> None:
    if not hasattr(model, "output_names"):  # Keras matches per-output settings to functional models' outputs only
        raise SpecError(path, "a Sequential model has one output: give one setting for it, not one per output name")
    names = output_names(model)
    for name in per_output:
        if name not in names:
            raise SpecError(f"{path}.{name}", f"the model has no output named {name!r} (its outputs: {', '.join(names)})")
    if path == "compile.loss":
        missing = [name for name in names if name not in per_output]
        if missing:
            raise SpecError(f"{path}.{missing[0]}", f"missing: give a loss for every output ({', '.join(names)})")


def _model_from_keras_json_named(config: dict[str, Any], shapes: dict[str, tuple[int, ...]]) -> keras.Model:
    """A functional model whose inputs are the dataset's x_<input> arrays, matched by name."""
    model = _rebuild(config)
    names = [str(t.name) for t in model.inputs]
    if set(names) != set(shapes):
        raise SpecError(
            "model.keras_json",
            f"the model's inputs are {', '.join(names)} but the dataset's are {', '.join(f'x_{n}' for n in shapes)}; "
            "name one x_<input name> array per input",
        )
    for tensor in model.inputs:
        _check_declared_input(f"model.keras_json (input {tensor.name!r})", tensor.shape[1:], shapes[str(tensor.name)])
    return model


def _rebuild(config: dict[str, Any], x_shape: tuple[int, ...] | None = None) -> keras.Model:
    """`x_shape` builds a Sequential that declares no input shape, as Keras' own first `fit` would."""
    _refuse_unsafe("model.keras_json", config)
    try:
        model = keras.models.model_from_json(json.dumps(_without_build_records(config, top=True)))
        if isinstance(model, keras.Sequential) and not model.built and x_shape is not None:
            model.build((None, *x_shape))
    except Exception as exc:
        raise SpecError("model.keras_json", f"Keras could not rebuild the model: {clean_error(exc)}") from None
    if not getattr(model, "inputs", None):
        raise SpecError("model.keras_json", "the model has no defined input shape; give it an Input layer")
    return model


def _without_build_records(node: Any, top: bool = False) -> Any:
    """The config without the input shapes `to_json()` recorded for each inner layer: the model's own
    graph builds every layer again, and a stale record would refuse a spec whose widths were edited
    (a sweep searching `…config.units` changes the shape the next layer takes)."""
    if isinstance(node, list):
        return [_without_build_records(item) for item in node]
    if not isinstance(node, dict):
        return node
    return {
        key: _without_build_records(value)
        for key, value in node.items()
        if top or key != "build_config" or "class_name" not in node
    }


def _model_from_layers(
    layer_specs: Sequence[Any], x_shape: tuple[int, ...], normalizer: Any, input_name: str | None = None
) -> keras.Model:
    inputs = keras.Input(shape=x_shape, name=input_name)
    tensor = normalizer(inputs) if normalizer is not None else inputs
    for index, layer_spec in enumerate(layer_specs):
        path = f"model.layers[{index}]"
        if layer_spec.type in DENIED_CLASSES:
            raise SpecError(f"{path}.type", f"{layer_spec.type} layers run code or read server files and are not allowed")
        cls = layer_classes().get(layer_spec.type)
        if cls is None:
            raise SpecError(
                f"{path}.type", f"unknown layer type {layer_spec.type!r}: use a class name from keras.layers, e.g. 'Dense'"
            )
        kwargs = layer_spec.kwargs()
        _refuse_unsafe(path, kwargs)
        declared = next((kwargs.pop(k) for k in INPUT_SHAPE_KWARGS if k in kwargs), None)
        if declared is not None:
            _check_declared_input(f"{path}.input_shape", declared, x_shape)
        try:
            layer = cls(**kwargs)
        except Exception as exc:  # Keras raises TypeError, ValueError or its own errors for bad arguments
            raise SpecError(_argument_path(path, kwargs, exc), clean_error(exc)) from None
        try:
            tensor = layer(tensor)
        except Exception as exc:
            raise SpecError(
                path, f"{layer_spec.type} cannot take an input of shape {_shape(tensor.shape)}: {clean_error(exc)}"
            ) from None
    return keras.Model(inputs, tensor)


def _model_from_keras_json(config: dict[str, Any], x_shape: tuple[int, ...], normalizer: Any) -> keras.Model:
    model = _rebuild(config, x_shape)
    if len(model.inputs) != 1:
        names = ", ".join(str(t.name) for t in model.inputs)
        raise SpecError(
            "model.keras_json",
            f"the model has {len(model.inputs)} inputs ({names}) but the dataset has one array of features, x; "
            "upload one x_<input name> array per input",
        )
    _check_declared_input("model.keras_json", model.inputs[0].shape[1:], x_shape)
    if normalizer is None:
        return model
    inputs = keras.Input(shape=x_shape)
    outputs = model(normalizer(inputs))
    # Wrapped, the outputs would take the inner model's name; per-output losses and metrics name the sent ones.
    sent_names = iter(output_names(model))
    return keras.Model(
        inputs, keras.tree.map_structure(lambda tensor: keras.layers.Identity(name=next(sent_names))(tensor), outputs)
    )


def _check_declared_input(path: str, declared: Any, x_shape: tuple[int, ...]) -> None:
    if isinstance(declared, int):
        declared = [declared]
    declared = list(declared)
    # batch_input_shape carries a leading batch dimension.
    if len(declared) == len(x_shape) + 1 and declared[0] is None:
        declared = declared[1:]
    if len(declared) != len(x_shape) or any(d is not None and d != x for d, x in zip(declared, x_shape, strict=False)):
        raise SpecError(
            path, f"the model expects samples of shape {_shape(declared)} but the dataset's samples have shape {_shape(x_shape)}"
        )


def _normalizer(kind: str, x_train: np.ndarray) -> keras.layers.Layer:
    axes = tuple(range(1, x_train.ndim))
    if kind == "standard":
        mean, variance = _mean_and_variance(x_train)
    else:  # minmax: (x - min) / (max - min), expressed as a Normalization so it saves with the model
        low, high = _min_and_max(x_train)
        span = np.where(high > low, high - low, 1.0)
        mean, variance = low, span**2
    return keras.layers.Normalization(axis=axes or None, mean=mean, variance=variance, name="epochly_normalize")


# Statistics are gathered a block of rows at a time: the training data may be a memory map
# larger than memory, and a float64 copy of it all would double even an in-memory dataset.
STATS_BLOCK_ROWS = 65_536


def _blocks(x: np.ndarray) -> Iterator[np.ndarray]:
    for start in range(0, len(x), STATS_BLOCK_ROWS):
        yield np.asarray(x[start : start + STATS_BLOCK_ROWS], dtype=np.float64)


def _min_and_max(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    blocks = _blocks(x)
    first = next(blocks)
    low, high = first.min(axis=0), first.max(axis=0)
    for block in blocks:
        low, high = np.minimum(low, block.min(axis=0)), np.maximum(high, block.max(axis=0))
    return low, high


def _mean_and_variance(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Chan et al.'s pairwise merge of per-block mean and squared deviations: exact to float64 rounding."""
    count, mean, m2 = 0, 0.0, 0.0
    for block in _blocks(x):
        n = len(block)
        block_mean = block.mean(axis=0)
        block_m2 = ((block - block_mean) ** 2).sum(axis=0)
        delta = block_mean - mean
        total = count + n
        mean = mean + delta * n / total
        m2 = m2 + block_m2 + delta**2 * count * n / total
        count = total
    return np.asarray(mean), np.asarray(m2 / count)


def _optimizer(spec: str | NamedObjectSpec, path: str = "compile.optimizer") -> keras.optimizers.Optimizer:
    """An optimizer by name or {"type", **kwargs}; a learning rate may be a schedule, and a wrapper's
    `inner_optimizer` (LossScaleOptimizer) is an optimizer in either form."""
    if isinstance(spec, str):
        if spec in optimizer_classes():  # a class name, e.g. "Lamb", which Keras' own lookup does not know
            return _instantiate(path, NamedObjectSpec(type=spec), optimizer_classes(), "optimizer")
        try:
            return keras.optimizers.get(spec)
        except ValueError:
            raise SpecError(path, f"unknown optimizer {spec!r}; known: {_names(optimizer_classes())}") from None
        except Exception as exc:  # a name Keras knows but cannot make alone: get('lossscaleoptimizer') raises KeyError
            raise SpecError(
                path,
                f"Keras could not make optimizer {spec!r} from its name alone ({type(exc).__name__}: {clean_error(exc)}); "
                'give it as {"type": ..., **arguments}',
            ) from None
    extra = dict(spec.model_extra or {})
    if isinstance(extra.get("learning_rate"), dict):
        extra["learning_rate"] = _schedule(f"{path}.learning_rate", extra["learning_rate"])
    inner = extra.get("inner_optimizer")
    if isinstance(inner, str | dict):
        inner_spec = inner if isinstance(inner, str) else _named_object(f"{path}.inner_optimizer", inner)
        extra["inner_optimizer"] = _optimizer(inner_spec, f"{path}.inner_optimizer")
    return _instantiate(path, NamedObjectSpec(type=spec.type, **extra), optimizer_classes(), "optimizer")


def _named_object(path: str, config: dict[str, Any]) -> NamedObjectSpec:
    if not isinstance(config.get("type"), str) or not config["type"]:
        raise SpecError(f"{path}.type", 'give the class name, e.g. {"type": "SGD", "learning_rate": 0.01}')
    return NamedObjectSpec.model_validate(config)


def _schedule(path: str, config: dict[str, Any]) -> keras.optimizers.schedules.LearningRateSchedule:
    """A learning-rate schedule from keras.optimizers.schedules, as {"type": "ExponentialDecay", **kwargs}
    or as Keras serializes one ({"class_name": ..., "config": {...}})."""
    if "class_name" in config:
        _refuse_unsafe(path, config)
        try:
            return keras.optimizers.schedules.deserialize(config)
        except Exception as exc:
            raise SpecError(path, f"Keras could not rebuild the schedule: {clean_error(exc)}") from None
    kind = config.get("type")
    classes = schedule_classes()
    if not isinstance(kind, str) or kind not in classes:
        raise SpecError(f"{path}.type", f"unknown learning-rate schedule {kind!r}; known: {_names(classes)}")
    return _instantiate(path, NamedObjectSpec.model_validate(config), classes, "learning-rate schedule")


def _loss(spec: str | NamedObjectSpec, path: str = "compile.loss") -> Any:
    if isinstance(spec, str):
        try:
            keras.losses.get(spec)
        except ValueError:
            raise SpecError(path, f"unknown loss {spec!r}: use a name from keras.losses, e.g. 'mse'") from None
        return spec
    return _instantiate(path, spec, loss_classes(), "loss")


def _metric(spec: str | NamedObjectSpec, path: str) -> Any:
    if isinstance(spec, str):
        if spec not in COMPILE_METRIC_ALIASES:
            try:
                keras.metrics.get(spec)
            except ValueError:
                raise SpecError(path, f"unknown metric {spec!r}: use a name from keras.metrics, e.g. 'accuracy'") from None
        return spec
    return _instantiate(path, spec, metric_classes(), "metric")


def _instantiate(path: str, spec: NamedObjectSpec, classes: dict[str, type], kind: str) -> Any:
    cls = classes.get(spec.type)
    if cls is None:
        raise SpecError(f"{path}.type", f"unknown {kind} {spec.type!r}; known: {_names(classes)}")
    kwargs = spec.kwargs()
    _refuse_unsafe(path, kwargs)
    try:
        return cls(**kwargs)
    except Exception as exc:
        raise SpecError(_argument_path(path, kwargs, exc), clean_error(exc)) from None


def _refuse_unsafe(path: str, config: Any) -> None:
    found = unsafe_config_reason(config)
    if found:
        raise SpecError(path + found[0], found[1])


def _argument_path(path: str, kwargs: dict[str, Any], exc: Exception) -> str:
    """Point at the keyword the error is about, when Keras' message names one."""
    message = str(exc)
    named = re.findall(r"`(\w+)`", message) + re.findall(r"'(\w+)'", message)
    for name in named:
        if name in kwargs:
            return f"{path}.{name}"
    for name in kwargs:
        if re.search(rf"\b{re.escape(name)}\b", message):
            return f"{path}.{name}"
    return path


def clean_error(exc: BaseException) -> str:
    """Keras and TensorFlow messages carry graph-node names, op tags, terminal colours and the call's
    arguments; keep the sentence a user needs. A nested deserialization error ends with the cause
    ("Exception encountered: …"), and a layer's call error says it on the lines after its first."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", text).strip()
    text = re.sub(r"\s*\[Op:[^\]]*\].*$", "", text, flags=re.S)
    causes = re.findall(r"Exception encountered: (.+)", text)
    if causes:
        return causes[-1].strip()[:500]
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    if not lines:
        return type(exc).__name__
    first = lines[0]
    if first.startswith("Exception encountered when calling") and len(lines) > 1 and not lines[1].startswith("Arguments"):
        first = f"{first.rstrip('.')}: {lines[1]}"
    return first[:500]


def _shape(shape: Any) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _names(classes: dict[str, type]) -> str:
    names = sorted(classes)
    return ", ".join(names[:12]) + (", …" if len(names) > 12 else "")
