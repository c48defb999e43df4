"""Submit-time check of a spec against real Keras, run in the spec-check helper process."""

import logging
from typing import Any

import keras
import numpy as np

from app.named_arrays import Arrays, for_keras, sample_shapes
from app.specs import NamedObjectSpec, TrainingSpec
from app.training.builder import SpecError, build_model, check_outputs, clean_error, compile_model
from app.training.callbacks import make_callback

logger = logging.getLogger(__name__)


def check_spec(
    spec_json: dict[str, Any], sample_x: Arrays, sample_y: Arrays, objective: str | None = None
) -> list[dict[str, str]]:
    """Build, compile and run one eager batch on a few real samples; return [{path, message}] or [].
    `sample_x` / `sample_y` are arrays by input / output name for a dataset stored that way.
    `objective`: a metric a sweep optimizes, which the epoch logs must hold (path `objective.metric`)."""
    spec = TrainingSpec.model_validate(spec_json)
    try:
        model = build_model(spec, sample_shapes(sample_x), sample_x)
        check_outputs(model, list(sample_y) if isinstance(sample_y, dict) else None)
        if spec.fit.class_weight and len(model.outputs) > 1:
            raise SpecError("fit.class_weight", "Keras weighs classes for a model with one output only; this one has several")
        compile_model(model, spec.compile, run_eagerly=True)
        try:
            logs = model.test_on_batch(for_keras(sample_x), for_keras(sample_y), return_dict=True)
        except Exception as exc:
            output = getattr(model, "output_shape", None)
            raise SpecError(
                "model",
                f"the model's output {output} does not fit the dataset's labels of shape {sample_shapes(sample_y)} "
                f"under loss {_loss_name(spec.compile.loss)}: {clean_error(exc)}",
            ) from None
        _check_callbacks(spec, model, set(logs))
        if objective is not None:
            _check_reported(spec, set(logs), objective, "objective.metric")
    except SpecError as exc:
        return [{"path": exc.path, "message": exc.message}]
    except Exception as exc:
        # Keras raising where no narrower check caught it: still the spec's fault, never the server's.
        logger.warning("spec check: Keras raised outside any narrower check", exc_info=True)
        return [{"path": "model", "message": f"Keras could not build this model: {type(exc).__name__}: {clean_error(exc)}"}]
    finally:
        # No forced gc.collect(): it was 70 % of a check's time; Python's collector still runs on its own.
        keras.backend.clear_session(free_memory=False)
    return []


def _check_reported(spec: TrainingSpec, metrics: set[str], name: str, path: str) -> None:
    """`name` must be in every epoch's logs: a metric of the model, its val_ twin, or the learning rate."""
    has_validation = spec.fit.validation_split > 0 or spec.fit.validation_dataset_id is not None
    available = metrics | ({f"val_{metric}" for metric in metrics} if has_validation else set())
    if name in available or name == "learning_rate":
        return
    hint = (
        ""
        if has_validation or not name.startswith("val_")
        else "; val_ metrics need fit.validation_split or fit.validation_dataset_id"
    )
    raise SpecError(path, f"the model reports no {name!r}; it reports {', '.join(sorted(available))}{hint}")


def _check_callbacks(spec: TrainingSpec, model: keras.Model, metrics: set[str]) -> None:
    """Each callback must monitor something the model reports, in a direction Keras can tell."""
    for index, callback_spec in enumerate(spec.fit.callbacks):
        path = f"fit.callbacks[{index}]"
        callback = make_callback(callback_spec)
        if callback is None:
            continue
        _check_reported(spec, metrics, callback.monitor, f"{path}.monitor")
        if isinstance(callback, keras.callbacks.ReduceLROnPlateau) and _has_schedule(model):
            raise SpecError(
                f"{path}.type",
                "ReduceLROnPlateau cannot change a learning rate that a schedule sets (compile.optimizer.learning_rate)",
            )
        callback.set_model(model)
        try:
            callback._set_monitor_op()
        except ValueError as exc:
            raise SpecError(f"{path}.mode", clean_error(exc)) from None


def _loss_name(loss: Any) -> str:
    if isinstance(loss, dict):
        return "{" + ", ".join(f"{name}: {_loss_name(value)}" for name, value in loss.items()) + "}"
    return repr(loss.type) if isinstance(loss, NamedObjectSpec) else repr(loss)


def _has_schedule(model: keras.Model) -> bool:
    return isinstance(getattr(model.optimizer, "_learning_rate", None), keras.optimizers.schedules.LearningRateSchedule)


def warm_up() -> None:
    """Runs once when the helper starts, so the first submit does not pay Keras' import and first build."""
    check_spec(
        {"model": {"layers": [{"type": "Dense", "units": 1}]}, "compile": {"loss": "mse"}},
        np.zeros((2, 1), dtype=np.float32),
        np.zeros((2,), dtype=np.float32),
    )
