"""Run `model.fit` for a spec, reporting each finished epoch through a callback the caller supplies."""
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np

from app.specs import TrainingSpec
from app.training.builder import build_model, compile_model, training_split

EpochSink = Callable[[int, dict[str, float], float], None]


class NonFiniteLoss(Exception):
    """The loss became NaN or infinite: training cannot recover, so the job fails rather than wasting epochs."""


class EpochReporter(keras.callbacks.Callback):
    """Hands each finished epoch (1-based number, Keras' logs, wall seconds) to the sink as it ends."""

    def __init__(self, sink: EpochSink) -> None:
        super().__init__()
        self._sink = sink
        self._epoch_started = 0.0
        self._epoch = 0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch = epoch + 1
        self._epoch_started = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise NonFiniteLoss(f"loss became {float(loss)} in epoch {self._epoch}, batch {batch + 1}")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        duration = time.perf_counter() - self._epoch_started
        values = {key: float(value) for key, value in (logs or {}).items()}
        if "loss" in values and not math.isfinite(values["loss"]):
            raise NonFiniteLoss(f"loss became {values['loss']} in epoch {epoch + 1}")
        self._sink(epoch + 1, values, duration)


def train(spec: TrainingSpec, x: np.ndarray, y: np.ndarray, *, on_epoch: EpochSink, model_path: Path) -> keras.Model:
    keras.backend.clear_session()
    if spec.fit.seed is not None:
        keras.utils.set_random_seed(spec.fit.seed)
    n_train = training_split(len(x), spec.fit.validation_split)
    model = build_model(spec, x.shape[1:], x[:n_train])
    compile_model(model, spec.compile)
    model.fit(
        x,
        y,
        batch_size=spec.fit.batch_size,
        epochs=spec.fit.epochs,
        shuffle=spec.fit.shuffle,
        validation_split=spec.fit.validation_split,
        verbose=0,
        callbacks=[EpochReporter(on_epoch)],
    )
    model_path.parent.mkdir(parents=True, exist_ok=True)
    partial = model_path.with_suffix(".partial.keras")
    model.save(partial)
    partial.replace(model_path)
    return model
