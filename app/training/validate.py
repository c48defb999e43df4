"""Submit-time check of a spec against real Keras, run in the spec-check helper process."""

from typing import Any

import keras
import numpy as np

from app.specs import TrainingSpec
from app.training.builder import SpecError, build_model, clean_error, compile_model


def check_spec(spec_json: dict[str, Any], sample_x: np.ndarray, sample_y: np.ndarray) -> list[dict[str, str]]:
    """Build, compile and run one eager batch on a few real samples; return [{path, message}] or []."""
    spec = TrainingSpec.model_validate(spec_json)
    try:
        model = build_model(spec, sample_x.shape[1:], sample_x)
        compile_model(model, spec.compile, run_eagerly=True)
        try:
            model.test_on_batch(sample_x, sample_y)
        except Exception as exc:
            output = getattr(model, "output_shape", None)
            raise SpecError(
                "model",
                f"the model's output {output} does not fit the dataset's labels of shape {tuple(sample_y.shape[1:])} "
                f"under loss {spec.compile.loss if isinstance(spec.compile.loss, str) else spec.compile.loss.type!r}: "
                f"{clean_error(exc)}",
            ) from None
    except SpecError as exc:
        return [{"path": exc.path, "message": exc.message}]
    finally:
        # No forced gc.collect(): it was 70 % of a check's time; Python's collector still runs on its own.
        keras.backend.clear_session(free_memory=False)
    return []


def warm_up() -> None:
    """Runs once when the helper starts, so the first submit does not pay Keras' import and first build."""
    check_spec(
        {"model": {"layers": [{"type": "Dense", "units": 1}]}, "compile": {"loss": "mse"}},
        np.zeros((2, 1), dtype=np.float32),
        np.zeros((2,), dtype=np.float32),
    )
