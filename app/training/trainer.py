"""Run `model.fit` for a spec, epoch by epoch, reporting each epoch and in-epoch progress through
hooks, checkpointing so an interrupted job resumes exactly where it stopped.

The data order of epoch e is a permutation drawn from (seed, e) alone, not from a random stream
that has to be replayed, so a run resumed at epoch k sees exactly the batches an uninterrupted
run would have seen. Named inputs and outputs (dicts of arrays) are all indexed by the same order.
"""

import enum
import math
import secrets
import time
from pathlib import Path
from typing import Any, Protocol

import keras
import numpy as np

from app.named_arrays import Arrays, apply, for_keras, rows, sample_shapes
from app.specs import TrainingSpec
from app.training.builder import build_model, compile_model, training_split
from app.training.callbacks import CallbackDriver, learning_rate
from app.training.checkpoint import Checkpoint

PROGRESS_INTERVAL_S = 0.25
# Small models are bound by per-step dispatch; running several steps per call into the compiled
# train step removes most of it without changing a single number the model computes.
AUTO_STEPS_PER_EXECUTION = 32


class Outcome(enum.Enum):
    """How `train` ended; the worker turns it into a job status (app.lifecycle)."""

    COMPLETED = enum.auto()
    # An EarlyStopping callback ended training before `fit.epochs`; the model is saved as on completion.
    EARLY_STOPPED = enum.auto()
    # A sweep's pruner ended the trial after an epoch; the model is saved as on completion.
    PRUNED = enum.auto()
    CANCELLED = enum.auto()
    HANDED_BACK = enum.auto()


class TrainingHooks(Protocol):
    def epoch_finished(self, epoch: int, logs: dict[str, float], duration_s: float) -> None: ...

    def progress(self, epoch: int, batch: int, batches: int | None) -> None: ...

    def should_stop(self) -> bool: ...

    def should_hand_back(self) -> bool: ...

    def should_end(self) -> bool:
        """End training after this epoch, keeping the model (a sweep pruned the trial)."""
        ...


class NullHooks:
    """Hooks that keep nothing and never interrupt: warm-up runs, benchmarks, tests build on it."""

    def epoch_finished(self, epoch: int, logs: dict[str, float], duration_s: float) -> None:
        pass

    def progress(self, epoch: int, batch: int, batches: int | None) -> None:
        pass

    def should_stop(self) -> bool:
        return False

    def should_hand_back(self) -> bool:
        return False

    def should_end(self) -> bool:
        return False


class NonFiniteLoss(Exception):
    """The loss became NaN or infinite: training cannot recover, so the job fails rather than wasting epochs."""


class EpochReporter(keras.callbacks.Callback):
    """Hands each finished epoch (1-based number, Keras' logs plus the epoch's learning rate, wall
    seconds) to the job's callbacks and then the hooks as it ends, reports in-epoch progress a few
    times a second, and stops training at the next batch when asked."""

    def __init__(self, hooks: TrainingHooks) -> None:
        super().__init__()
        self.hooks = hooks
        self.epoch = 0
        self.stopped = False
        # Set by `train`: the job's callbacks and best-epoch tracker, which outlive each epoch's `fit`.
        self.callbacks: CallbackDriver | None = None
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
        rate = learning_rate(self.model)
        if rate is not None:
            values["learning_rate"] = rate  # the rate this epoch trained with, before a plateau cut
        if self.callbacks is not None:
            self.callbacks.epoch_end(epoch, values)
        self.hooks.epoch_finished(epoch + 1, values, duration)


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n)


class StreamedBatches(keras.utils.PyDataset):
    """Batches gathered from (memory-mapped) arrays in a given order, one at a time: for datasets
    larger than the worker's memory budget. The batches equal those the in-memory path feeds."""

    def __init__(self, x: Arrays, y: Arrays, batch_size: int, order: np.ndarray | None = None) -> None:
        super().__init__(workers=1, use_multiprocessing=False, max_queue_size=8)
        self._x, self._y, self._batch_size, self._order = x, y, batch_size, order

    def __len__(self) -> int:
        return math.ceil(rows(self._x) / self._batch_size)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        start, stop = index * self._batch_size, min((index + 1) * self._batch_size, rows(self._x))
        if self._order is None:
            return for_keras(apply(self._x, lambda a: np.asarray(a[start:stop]))), for_keras(
                apply(self._y, lambda a: np.asarray(a[start:stop]))
            )
        picked = self._order[start:stop]
        return for_keras(apply(self._x, lambda a: a[picked])), for_keras(apply(self._y, lambda a: a[picked]))


def _pick(data: Arrays, order: np.ndarray) -> Arrays:
    """The rows `order` names, from every array alike."""
    return apply(data, lambda a: a[order])


def train(
    spec: TrainingSpec,
    x: Arrays,
    y: Arrays,
    *,
    reporter: EpochReporter,
    model_path: Path,
    checkpoint: Checkpoint | None = None,
    checkpoint_interval_s: float = 0.0,
    in_memory: bool = True,
    validation_data: tuple[Arrays, Arrays] | None = None,
) -> Outcome:
    """Train (resuming from `checkpoint` if it holds one) and save the model when training completes,
    an EarlyStopping callback ends it or the hooks end it (a pruned trial).

    `validation_data` is the dataset `fit.validation_dataset_id` names (instead of a split of `x`).
    With `in_memory=False`, `x` and `y` (and the validation arrays) may be memory maps larger than
    memory: batches are gathered one at a time instead of permuting the whole training set each epoch.
    `x` and `y` (and the validation arrays) may each be arrays by input / output name."""
    fit = spec.fit
    n_samples = rows(x)
    n_train = training_split(n_samples, fit.validation_split)
    x_train, y_train = apply(x, lambda a: a[:n_train]), apply(y, lambda a: a[:n_train])
    validation: Any = None
    if validation_data is None and n_train < n_samples:
        validation_data = (apply(x, lambda a: a[n_train:]), apply(y, lambda a: a[n_train:]))
    if validation_data is not None:
        if in_memory:
            validation = (for_keras(validation_data[0]), for_keras(validation_data[1]))
        else:
            validation = StreamedBatches(*validation_data, fit.batch_size)
    class_weight = {int(key): value for key, value in fit.class_weight.items()} if fit.class_weight else None
    driver = CallbackDriver(fit, has_validation=validation is not None)
    reporter.callbacks = driver

    keras.backend.clear_session()
    restored = checkpoint.load() if checkpoint else None
    if restored:
        model, state = restored
        start_epoch, seed = state["epoch"], state["seed"]
        driver.restore(model, state.get("callbacks", {}), state["arrays"])
    else:
        seed = fit.seed if fit.seed is not None else secrets.randbelow(2**31)
        keras.utils.set_random_seed(seed)
        model = build_model(spec, sample_shapes(x), x_train)
        steps_per_epoch = math.ceil(n_train / fit.batch_size)
        compile_model(
            model, spec.compile, steps_per_execution=fit.steps_per_execution or min(AUTO_STEPS_PER_EXECUTION, steps_per_epoch)
        )
        start_epoch = 0
        driver.start(model)

    last_checkpoint = time.monotonic()
    ended = False
    for epoch in range(start_epoch, fit.epochs):
        if driver.stopped_early:  # resumed from the checkpoint of the epoch that stopped it
            break
        order = epoch_order(seed, epoch, n_train) if fit.shuffle else None
        if not in_memory:
            data: dict[str, Any] = {"x": StreamedBatches(x_train, y_train, fit.batch_size, order)}
        elif order is not None:
            data = {"x": for_keras(_pick(x_train, order)), "y": for_keras(_pick(y_train, order)), "batch_size": fit.batch_size}
        else:
            data = {"x": for_keras(x_train), "y": for_keras(y_train), "batch_size": fit.batch_size}
        model.fit(
            **data,
            epochs=epoch + 1,
            initial_epoch=epoch,
            shuffle=False,
            validation_data=validation,
            verbose=0,
            callbacks=[reporter],
            class_weight=class_weight,
        )
        if reporter.stopped:
            return Outcome.CANCELLED
        if epoch + 1 < fit.epochs and reporter.hooks.should_end():
            ended = True
            break
        hand_back = reporter.hooks.should_hand_back() and epoch + 1 < fit.epochs and not driver.stopped_early
        if checkpoint and (hand_back or time.monotonic() - last_checkpoint >= checkpoint_interval_s):
            callback_state, arrays = driver.state()
            checkpoint.save(model, {"epoch": epoch + 1, "seed": seed, "callbacks": callback_state}, arrays)
            last_checkpoint = time.monotonic()
        if hand_back:
            return Outcome.HANDED_BACK

    driver.finish()
    model_path.parent.mkdir(parents=True, exist_ok=True)
    partial = model_path.with_suffix(".partial.keras")
    model.save(partial)
    partial.replace(model_path)
    if ended:
        return Outcome.PRUNED
    return Outcome.EARLY_STOPPED if driver.stopped_early else Outcome.COMPLETED
