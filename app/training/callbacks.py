"""Keras callbacks given as data (`fit.callbacks`), driven as one uninterrupted `fit` would drive
them across a job's attempts, with their state checkpointed; and the job's best epoch, chosen by
Keras' own EarlyStopping rule.

A resumed attempt is a new `fit`, and Keras' `fit` calls `on_train_begin` at the start of every
call, which would reset EarlyStopping's and ReduceLROnPlateau's counters: so these callbacks are
never handed to `fit`. The driver calls `on_train_begin` once per job (restoring the counters from
the checkpoint on resume), `on_epoch_end` after each epoch and `on_train_end` when training ends.
"""

from typing import Any

import keras
import numpy as np

from app.specs import EarlyStoppingSpec, FitSpec, ReduceLROnPlateauSpec

# The job's best epoch is tracked even without an EarlyStopping: by a hidden one that never stops.
NEVER = 10**9


def make_callback(spec: Any) -> keras.callbacks.Callback | None:
    """The Keras object for one allowed callback spec; None for TerminateOnNaN, which Epochly always applies
    itself (every step's loss is checked, and a NaN or infinite loss ends the job)."""
    if isinstance(spec, EarlyStoppingSpec):
        return keras.callbacks.EarlyStopping(**spec.model_dump(exclude={"type"}))
    if isinstance(spec, ReduceLROnPlateauSpec):
        return keras.callbacks.ReduceLROnPlateau(**spec.model_dump(exclude={"type"}))
    return None


def default_monitor(has_validation: bool) -> str:
    return "val_loss" if has_validation else "loss"


def learning_rate(model: keras.Model) -> float | None:
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or hasattr(optimizer, "optimizers"):
        return None
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


class CallbackDriver:
    """The job's callbacks and its best-epoch tracker, kept across the `fit` calls of its attempts."""

    def __init__(self, fit: FitSpec, *, has_validation: bool) -> None:
        self.epochs = fit.epochs
        built = [(index, make_callback(spec)) for index, spec in enumerate(fit.callbacks)]
        self.callbacks: list[tuple[int, keras.callbacks.Callback]] = [(i, cb) for i, cb in built if cb is not None]
        stoppers = [cb for _, cb in self.callbacks if isinstance(cb, keras.callbacks.EarlyStopping)]
        self.tracker: keras.callbacks.EarlyStopping = (
            stoppers[0] if stoppers else keras.callbacks.EarlyStopping(monitor=default_monitor(has_validation), patience=NEVER)
        )
        self._hidden_tracker = not stoppers
        self.best_epoch: int | None = None  # 1-based, like epoch rows
        self.best: dict[str, float] | None = None
        self.stopped_early = False

    def _all(self) -> list[tuple[str, keras.callbacks.Callback]]:
        named = [(str(index), cb) for index, cb in self.callbacks]
        return [*named, ("tracker", self.tracker)] if self._hidden_tracker else named

    def start(self, model: keras.Model) -> None:
        """Once per job (a resumed job restores the state instead of starting again)."""
        for _, callback in self._all():
            callback.set_model(model)
            callback.on_train_begin()

    def epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        """`epoch` is 0-based, as Keras passes it; `logs` already holds the epoch's learning rate."""
        before = self.tracker.best
        for _, callback in self._all():
            callback.on_epoch_end(epoch, logs)
        if self.tracker.best is not None and self.tracker.best != before:
            self.best_epoch, self.best = epoch + 1, dict(logs)
        self.stopped_early = self._stopped_before_the_last_epoch()

    def finish(self) -> None:
        """Training ended (all epochs, or stopped early): EarlyStopping restores the best weights if asked to."""
        for _, callback in self.callbacks:
            callback.on_train_end()

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """JSON-able counters and best values, and the arrays (EarlyStopping's best weights)."""
        states: dict[str, Any] = {}
        arrays: dict[str, np.ndarray] = {}
        for name, callback in self._all():
            if isinstance(callback, keras.callbacks.EarlyStopping):
                states[name] = {
                    "wait": callback.wait,
                    "stopped_epoch": callback.stopped_epoch,
                    "best": _plain(callback.best),
                    "best_epoch": callback.best_epoch,
                    "best_weights": callback.best_weights is not None,
                }
                for j, weight in enumerate(callback.best_weights or []):
                    arrays[f"callbacks.{name}.best_weights.{j}"] = np.asarray(weight)
            elif isinstance(callback, keras.callbacks.ReduceLROnPlateau):
                states[name] = {
                    "wait": callback.wait,
                    "cooldown_counter": callback.cooldown_counter,
                    "best": _plain(callback.best),
                }
        return {"callbacks": states, "best_epoch": self.best_epoch, "best": self.best}, arrays

    def restore(self, model: keras.Model, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.start(model)
        self.best_epoch, self.best = state.get("best_epoch"), state.get("best")
        saved = state.get("callbacks", {})
        for name, callback in self._all():
            values = saved.get(name)
            if values is None:
                continue
            callback.wait, callback.best = values["wait"], values["best"]
            if isinstance(callback, keras.callbacks.EarlyStopping):
                callback.stopped_epoch, callback.best_epoch = values["stopped_epoch"], values["best_epoch"]
                if values["best_weights"]:
                    prefix = f"callbacks.{name}.best_weights."
                    count = sum(1 for key in arrays if key.startswith(prefix))
                    callback.best_weights = [arrays[f"{prefix}{j}"] for j in range(count)]
            elif isinstance(callback, keras.callbacks.ReduceLROnPlateau):
                callback.cooldown_counter = values["cooldown_counter"]
        self.stopped_early = self._stopped_before_the_last_epoch()

    def _stopped_before_the_last_epoch(self) -> bool:
        """Keras marks a stop on the last epoch too; but a job that ran every epoch completed."""
        return any(
            isinstance(cb, keras.callbacks.EarlyStopping) and 0 < cb.stopped_epoch < self.epochs - 1 for _, cb in self.callbacks
        )


def _plain(value: Any) -> float | None:
    return None if value is None else float(value)
