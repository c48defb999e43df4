"""A compiled Keras model and `fit`'s arguments as the job spec POST /v1/jobs takes."""

import inspect
import json
from typing import Any

import keras

# Keras' callbacks that are data (their arguments say everything): the service runs them itself.
SERVER_CALLBACKS = (keras.callbacks.EarlyStopping, keras.callbacks.ReduceLROnPlateau, keras.callbacks.TerminateOnNaN)
# Callbacks that need the weights while training, which only the service has, and what to use instead.
REFUSED_CALLBACKS: dict[type, str] = {
    keras.callbacks.ModelCheckpoint: "Epochly checkpoints every epoch of every job itself and keeps the trained "
    "model (GET /v1/jobs/{id}/model; restore_best_weights on an EarlyStopping keeps the best epoch's)",
    keras.callbacks.BackupAndRestore: "Epochly checkpoints every epoch of every job itself and resumes an interrupted "
    "job exactly where it stopped",
    keras.callbacks.SwapEMAWeights: "it swaps the weights during training; give the optimizer use_ema=True and the "
    "trained model holds the averaged weights",
    keras.callbacks.LearningRateScheduler: "it runs a Python function inside training; give the optimizer a "
    "keras.optimizers.schedules learning rate instead",
}
# Argument names a callback takes that the service has no use for.
NOT_SENT = frozenset({"self", "verbose", "kwargs"})


def compile_spec(model: Any) -> dict[str, Any]:
    """The optimizer (its learning rate or schedule), loss, metrics and loss weights `compile` was given."""
    model._assert_compile_called("fit")  # Keras' own check: an uncompiled model gets the error model.fit gives
    config = model.get_compile_config()
    spec: dict[str, Any] = {"optimizer": _object(config["optimizer"]), "loss": _per_output(config["loss"])}
    for key in ("metrics", "weighted_metrics"):
        if config.get(key):
            spec[key] = _per_output(config[key])
    if config.get("loss_weights") is not None:
        spec["loss_weights"] = config["loss_weights"]
    return spec


def model_json(model: Any) -> dict[str, Any]:
    """`model.to_json()` without the compile settings it embeds: the spec's `compile` carries them, and a
    refusal then names compile.loss, not a copy of it inside model.keras_json."""
    config: dict[str, Any] = json.loads(model.to_json())
    config.pop("compile_config", None)
    return config


def split_callbacks(callbacks: list[Any] | None) -> tuple[list[dict[str, Any]], list[Any]]:
    """The service's callbacks as specs, and the ones that run here as the epochs arrive. Refuses, before
    anything is sent, those that need the weights during training."""
    server: list[dict[str, Any]] = []
    local: list[Any] = []
    for callback in callbacks or []:
        for kind, reason in REFUSED_CALLBACKS.items():
            if isinstance(callback, kind):
                raise ValueError(f"{type(callback).__name__} cannot run with epochly_client.keras.fit: {reason}")
        if isinstance(callback, SERVER_CALLBACKS):
            server.append(_callback_spec(callback))
        else:
            local.append(callback)
    return server, local


def _callback_spec(callback: Any) -> dict[str, Any]:
    """Every argument the callback's class takes, read back from the object (Keras keeps each under its name)."""
    parameters = inspect.signature(type(callback).__init__).parameters
    arguments = {name: getattr(callback, name) for name in parameters if name not in NOT_SENT and hasattr(callback, name)}
    return {"type": type(callback).__name__, **arguments}


def _per_output(value: Any) -> Any:
    """A loss or metric list, or one of those per output name."""
    if isinstance(value, dict) and "class_name" not in value:
        return {name: _per_output(item) for name, item in value.items()}
    if isinstance(value, list | tuple):
        return [_per_output(item) for item in value]
    return _object(value)


def _object(value: Any) -> Any:
    """Keras' serialized object ({"class_name", "config"}) as {"type", **config}; a name stays a name.
    A function (keras.losses.mse) serializes as its name."""
    if not isinstance(value, dict):
        return value
    if value.get("class_name") == "function":
        return value["config"]
    config = dict(value.get("config") or {})
    inner = config.get("inner_optimizer")
    if isinstance(inner, dict):
        config["inner_optimizer"] = _object(inner)
    # json round trip: numpy scalars and tuples in a config become what the API reads
    return json.loads(json.dumps({"type": value["class_name"], **config}, default=_plain))


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} in a compile setting cannot be sent to the service")
