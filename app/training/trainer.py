"""Run `model.fit` for a spec, reporting each epoch and in-epoch progress through hooks the caller supplies."""
import math
import time
from pathlib import Path
from typing import Any, Protocol

import keras
import numpy as np

from app.specs import TrainingSpec
from app.training.builder import build_model, compile_model, training_split

PROGRESS_INTERVAL_S = 0.25


class TrainingHooks(Protocol):
    def epoch_finished(self, epoch: int, logs: dict[str, float], duration_s: float) -> None: ...

    def progress(self, epoch: int, batch: int, batches: int | None) -> None: ...

    def should_stop(self) -> bool: ...


class NonFiniteLoss(Exception):
    """The loss became NaN or infinite: training cannot recover, so the job fails rather than wasting epochs."""


class EpochReporter(keras.callbacks.Callback):
    """Hands each finished epoch (1-based number, Keras' logs, wall seconds) to the hooks as it ends,
    reports in-epoch progress a few times a second, and stops training at the next batch when asked."""

    def __init__(self, hooks: TrainingHooks) -> None:
        super().__init__()
        self.hooks = hooks
        self.epoch = 0
        self.stopped = False
        self._epoch_started = 0.0
        self._last_progress = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch = epoch + 1
        self._epoch_started = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise NonFiniteLoss(f"loss became {float(loss)} in epoch {self.epoch}, batch {batch + 1}")
        if self.hooks.should_stop():
            self.stopped = True
            self.model.stop_training = True
            return
        now = time.perf_counter()
        if now - self._last_progress >= PROGRESS_INTERVAL_S:
            self._last_progress = now
            self.hooks.progress(self.epoch, batch + 1, self.params.get("steps"))

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.stopped:  # a cancelled epoch is not a finished one
            return
        duration = time.perf_counter() - self._epoch_started
        values = {key: float(value) for key, value in (logs or {}).items()}
        if "loss" in values and not math.isfinite(values["loss"]):
            raise NonFiniteLoss(f"loss became {values['loss']} in epoch {epoch + 1}")
        self.hooks.epoch_finished(epoch + 1, values, duration)


def train(spec: TrainingSpec, x: np.ndarray, y: np.ndarray, *, reporter: EpochReporter, model_path: Path) -> keras.Model | None:
    """Train and save the model; returns None (and saves nothing) when the hooks asked to stop."""
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
        callbacks=[reporter],
    )
    if reporter.stopped:
        return None
    model_path.parent.mkdir(parents=True, exist_ok=True)
    partial = model_path.with_suffix(".partial.keras")
    model.save(partial)
    partial.replace(model_path)
    return model
