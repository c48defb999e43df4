"""Run one `model.fit` for a spec, reporting each epoch as it ends and in-epoch progress through
hooks, checkpointing so an interrupted job resumes exactly where it stopped.

The data order of epoch e is a permutation drawn from (seed, e) alone, not from a random stream
that has to be replayed, so a run resumed at epoch k sees exactly the batches an uninterrupted
run would have seen. Named inputs and outputs (dicts of arrays) are all indexed by the same order.

One `fit` covers the whole run (from the resumed epoch on): a tf.data pipeline draws each epoch's
permutation as that epoch begins, and callbacks do the work between epochs (epoch rows, the job's
callbacks, pruning, checkpoints, the hand-back). A `fit` per epoch cost more than the training itself
for small models: a new data pipeline, callback list and traced dataset functions every epoch.
"""

import contextlib
import enum
import gc
import math
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import keras
import numpy as np
import tensorflow as tf

from app.named_arrays import Arrays, apply, for_keras, rows, sample_shapes
from app.specs import TrainingSpec
from app.training.builder import build_model, compile_model, training_split
from app.training.callbacks import CallbackDriver, learning_rate
from app.training.checkpoint import Checkpoint

PROGRESS_INTERVAL_S = 0.25
# Small models are bound by per-step dispatch; running several steps per call into the compiled
# train step removes most of it without changing a single number the model computes. By default an
# execution runs at least 32 steps, and more for tiny models (about AUTO_EXECUTION_WORK parameters ×
# samples per execution, a few milliseconds of work; at most 1,024 steps and one epoch), so cancel and
# progress still act within a fraction of a second.
AUTO_STEPS_PER_EXECUTION = 32
MAX_AUTO_STEPS_PER_EXECUTION = 1024
AUTO_EXECUTION_WORK = 2_000_000


def auto_steps_per_execution(model: keras.Model, batch_size: int, steps_per_epoch: int) -> int:
    by_size = AUTO_EXECUTION_WORK // max(1, model.count_params() * batch_size)
    return max(1, min(steps_per_epoch, MAX_AUTO_STEPS_PER_EXECUTION, max(AUTO_STEPS_PER_EXECUTION, by_size)))


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
        # Set by `train`: the job's callbacks and best-epoch tracker, which outlive each attempt's `fit`.
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


def _floatx(array: np.ndarray) -> np.ndarray:
    """Floats as Keras' own array input feeds them (float32); other dtypes as they are."""
    if np.issubdtype(array.dtype, np.floating) and array.dtype != np.float32:
        return np.asarray(array, dtype=np.float32)
    return np.asarray(array)


def class_weights_to_sample_weights(y: np.ndarray, class_weight: dict[int, float]) -> np.ndarray:
    """Keras' own translation of `class_weight` into per-sample weights, vectorized: float32, the
    class is the label rounded (or the argmax of a one-hot label), classes without a weight get 1."""
    labels = np.asarray(y)
    if labels.ndim > 1:
        labels = np.argmax(labels, axis=-1) if labels.shape[-1] != 1 else np.squeeze(labels, axis=-1)
    labels = np.round(labels).astype(np.int32)
    weights = np.ones(labels.shape[0], dtype=np.float32)
    for label, weight in class_weight.items():
        weights[labels == label] = weight
    return weights


class EpochBatches:
    """The training data of the run's one `fit`: each epoch's batches, in the order `epoch_order(seed,
    epoch, n)` names (or as stored, without shuffle), for the epoch the callbacks set as it begins.

    Each epoch gets a dataset of its own, built when Keras starts iterating that epoch: in memory, the
    epoch's rows gathered at once and sliced into batches (a pipeline without functions, whose iterator
    costs well under a millisecond; one that gathers per batch in a tf.data function re-instantiates it
    for every epoch's iterator, 10–30 ms each); from memory maps (`in_memory=False`), a generator that
    gathers one batch at a time, never permuting the whole training set. Either way the batches equal
    those Keras' own array input would feed, as does (x, y, sample_weight)."""

    def __init__(
        self,
        x: Arrays,
        y: Arrays,
        batch_size: int,
        *,
        seed: int,
        shuffle: bool,
        in_memory: bool,
        sample_weight: np.ndarray | None = None,
    ) -> None:
        self.x, self.y, self.sample_weight = x, y, sample_weight
        self.batch_size, self.seed, self.shuffle, self.in_memory = batch_size, seed, shuffle, in_memory
        self.n = rows(x)
        self.steps = math.ceil(self.n / batch_size)
        self.epoch = 0  # 0-based, as Keras counts: set by `EpochOrder` when an epoch begins
        # Cast once: an epoch's gather then copies float32 rows only.
        self._arrays = self._structure(_floatx) if in_memory else None
        self._built: tuple[int, tf.data.Dataset] | None = None

    def order(self) -> np.ndarray:
        if self.shuffle:
            return epoch_order(self.seed, self.epoch, self.n)
        return np.arange(self.n)

    def _structure(self, take: Any) -> Any:
        """(x, y) or (x, y, sample_weight), each array passed through `take`; one named array goes bare."""
        parts = [for_keras(apply(self.x, take)), for_keras(apply(self.y, take))]
        if self.sample_weight is not None:
            parts.append(take(self.sample_weight))
        return tuple(parts)

    def dataset(self) -> tf.data.Dataset:
        """What `fit` gets: every iteration of it is the current epoch's dataset."""
        return _EachIteration(self._for_epoch, self._for_epoch().element_spec, self.steps)

    def _for_epoch(self) -> tf.data.Dataset:
        # Keras also opens (and drops) an iterator at the end of each epoch: that one gets the same
        # dataset again rather than a new gather.
        if self._built is None or self._built[0] != self.epoch:
            self._built = None  # the last epoch's rows go before this epoch's are gathered
            dataset = self._in_memory() if self.in_memory else self._streamed()
            options = tf.data.Options()
            # As Keras' own array input does: no graph rewrites (their cost is per iterator, their gain nil here).
            options.experimental_optimization.apply_default_optimizations = False
            self._built = (self.epoch, dataset.with_options(options))
        return self._built[1]

    def _in_memory(self) -> tf.data.Dataset:
        order = self.order()
        full = self.n // self.batch_size * self.batch_size
        # The epoch's full batches as one array of batches (an element per batch, not per row), then the
        # partial last batch; when there is none, an empty one that is never taken keeps the batch
        # dimension unknown, as in Keras' own pipeline. No prefetch: slicing a batch from memory costs
        # less than handing it over from another thread.
        batches = tf.nest.map_structure(lambda a: a[order[:full]].reshape(-1, self.batch_size, *a.shape[1:]), self._arrays)
        rest = tf.nest.map_structure(lambda a: a[order[full:]], self._arrays)
        last = tf.data.Dataset.from_tensors(rest).take(1 if full < self.n else 0)
        return tf.data.Dataset.from_tensor_slices(batches).concatenate(last)

    def _streamed(self) -> tf.data.Dataset:
        order = self.order()

        def batches() -> Any:
            for start in range(0, self.n, self.batch_size):
                picked = order[start : start + self.batch_size]
                yield self._structure(lambda a, picked=picked: _floatx(a[picked]))

        first = self._structure(lambda a: _floatx(a[:1]))
        signature = tf.nest.map_structure(lambda a: tf.TensorSpec((None, *a.shape[1:]), tf.as_dtype(a.dtype)), first)
        generated = tf.data.Dataset.from_generator(batches, output_signature=signature)
        # A known length gives Keras the epoch's step count (for progress) without a warning at its end;
        # the next batches are read from disk while this one trains.
        return generated.apply(tf.data.experimental.assert_cardinality(self.steps)).prefetch(tf.data.AUTOTUNE)


class _EachIteration(tf.data.Dataset):
    """A dataset whose every iteration is over the dataset `make` returns at that moment. Keras iterates
    `fit`'s dataset once per epoch (when no steps_per_epoch is given) and asks nothing else of it but its
    element spec and cardinality, which all epochs share. Under the default distribution strategy (the
    worker's) Keras iterates the dataset it was given, not a copy. The dataset itself holds no data: its
    graph is a range of the epoch's length, there for `cardinality()`."""

    def __init__(self, make: Any, element_spec: Any, cardinality: int) -> None:
        self._make, self._spec = make, element_spec
        super().__init__(tf.data.Dataset.range(cardinality)._variant_tensor)

    def __iter__(self) -> Any:
        return iter(self._make())

    def _inputs(self) -> list[tf.data.Dataset]:
        return []

    @property
    def element_spec(self) -> Any:
        return self._spec


class EpochOrder(keras.callbacks.Callback):
    """Tells the data which epoch begins."""

    def __init__(self, batches: EpochBatches) -> None:
        super().__init__()
        self.batches = batches

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.batches.epoch = epoch


class BetweenEpochs(keras.callbacks.Callback):
    """After each epoch's row is reported (so it runs after `EpochReporter`): end a pruned trial,
    checkpoint every `checkpoint_interval_s` and at a hand-back, and stop `fit` for either."""

    def __init__(
        self,
        reporter: EpochReporter,
        driver: CallbackDriver,
        *,
        epochs: int,
        seed: int,
        checkpoint: Checkpoint | None,
        checkpoint_interval_s: float,
    ) -> None:
        super().__init__()
        self.reporter, self.driver, self.epochs, self.seed = reporter, driver, epochs, seed
        self.checkpoint, self.checkpoint_interval_s = checkpoint, checkpoint_interval_s
        self.ended = False
        self.handed_back = False
        self._last_checkpoint = time.monotonic()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.reporter.stopped:
            return
        hooks = self.reporter.hooks
        more = epoch + 1 < self.epochs
        if more and hooks.should_end():
            self.ended = True
            self.model.stop_training = True
            return
        hand_back = more and hooks.should_hand_back() and not self.driver.stopped_early
        if self.checkpoint and (hand_back or time.monotonic() - self._last_checkpoint >= self.checkpoint_interval_s):
            callback_state, arrays = self.driver.state()
            self.checkpoint.save(self.model, {"epoch": epoch + 1, "seed": self.seed, "callbacks": callback_state}, arrays)
            self._last_checkpoint = time.monotonic()
        if hand_back:
            self.handed_back = True
            self.model.stop_training = True


@contextlib.contextmanager
def _collector_skips_older_objects() -> Iterator[None]:
    """While training, Python's cyclic collector looks at objects made since it began only: a full
    collection over everything a worker has loaded (Keras, TensorFlow, the service) took ~0.2 s, about a
    tenth of the tutorial's training, and tracing the train step allocates enough to trigger one. The
    older objects are handed back to the collector afterwards, so nothing is kept that would be freed."""
    if gc.get_freeze_count():  # someone else froze objects: leave their choice alone
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@_collector_skips_older_objects()
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
    validation: tf.data.Dataset | None = None
    if validation_data is None and n_train < n_samples:
        validation_data = (apply(x, lambda a: a[n_train:]), apply(y, lambda a: a[n_train:]))
    if validation_data is not None:
        # A dataset like the training data's, not arrays: Keras 3.15 gets the per-output validation losses
        # of a multi-output model wrong when it trains on a dataset and validates on arrays.
        validation = EpochBatches(*validation_data, fit.batch_size, seed=0, shuffle=False, in_memory=in_memory).dataset()
    sample_weight = None
    if fit.class_weight:
        labels = for_keras(y_train)
        assert not isinstance(labels, dict)  # the spec check allows class weights for one output only
        weights = {int(key): value for key, value in fit.class_weight.items()}
        sample_weight = class_weights_to_sample_weights(np.asarray(labels), weights)
    driver = CallbackDriver(fit, has_validation=validation is not None)
    reporter.callbacks = driver

    # The memory of the previous job's graphs is freed by Python's collector in its own time: a forced
    # collection here cost more than a tenth of the tutorial's training.
    keras.backend.clear_session(free_memory=False)
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
            model,
            spec.compile,
            steps_per_execution=fit.steps_per_execution or auto_steps_per_execution(model, fit.batch_size, steps_per_epoch),
        )
        start_epoch = 0
        driver.start(model)

    between = BetweenEpochs(
        reporter, driver, epochs=fit.epochs, seed=seed, checkpoint=checkpoint, checkpoint_interval_s=checkpoint_interval_s
    )
    # Resumed from the checkpoint of the epoch that stopped it early, or of the last epoch: nothing to train.
    if start_epoch < fit.epochs and not driver.stopped_early:
        batches = EpochBatches(
            x_train, y_train, fit.batch_size, seed=seed, shuffle=fit.shuffle, in_memory=in_memory, sample_weight=sample_weight
        )
        batches.epoch = start_epoch
        model.fit(
            batches.dataset(),
            epochs=fit.epochs,
            initial_epoch=start_epoch,
            shuffle=False,  # the data is in each epoch's order already
            validation_data=validation,
            verbose=0,
            callbacks=[EpochOrder(batches), reporter, between],
        )
    if reporter.stopped:
        return Outcome.CANCELLED
    if between.handed_back:
        return Outcome.HANDED_BACK

    driver.finish()
    model_path.parent.mkdir(parents=True, exist_ok=True)
    partial = model_path.with_suffix(".partial.keras")
    model.save(partial)
    partial.replace(model_path)
    if between.ended:
        return Outcome.PRUNED
    return Outcome.EARLY_STOPPED if driver.stopped_early else Outcome.COMPLETED
