"""Training in-process: epoch reporting, seeding and the normalization built into the model."""
import numpy as np
import pytest

from app.specs import TrainingSpec
from app.storage import LocalStore
from app.training.checkpoint import Checkpoint
from app.training.trainer import EpochReporter, NonFiniteLoss, NullHooks, Outcome, train


class RecordingHooks(NullHooks):
    def __init__(self, stop_at_batch: int | None = None) -> None:
        self.rows: list[tuple[int, dict, float]] = []
        self.batches_seen = 0
        self.stop_at_batch = stop_at_batch

    def epoch_finished(self, epoch, logs, duration_s):
        self.rows.append((epoch, logs, duration_s))

    def should_stop(self):
        self.batches_seen += 1
        return self.stop_at_batch is not None and self.batches_seen >= self.stop_at_batch


def spec(**fit) -> TrainingSpec:
    return TrainingSpec.model_validate(
        {
            "model": {"layers": [{"type": "Dense", "units": 8, "activation": "relu"}, {"type": "Dense", "units": 2, "activation": "softmax"}]},
            "compile": {"optimizer": {"type": "Adam", "learning_rate": 0.01}, "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]},
            "fit": {"epochs": 3, "batch_size": 16, **fit},
        }
    )


@pytest.fixture
def data():
    rng = np.random.default_rng(1)
    x = rng.uniform(13, 100, size=(200, 1)).astype(np.float32)
    return x, (x[:, 0] > 60).astype(np.int32)


def run(training_spec, x, y, tmp_path, hooks=None):
    hooks = hooks or RecordingHooks()
    outcome = train(training_spec, x, y, reporter=EpochReporter(hooks), model_path=tmp_path / "m.keras")
    return outcome, hooks.rows


def test_each_epoch_is_reported_once_in_order_with_keras_logs(data, tmp_path):
    _, rows = run(spec(validation_split=0.25), *data, tmp_path)
    assert [r[0] for r in rows] == [1, 2, 3]
    assert set(rows[0][1]) == {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"}
    assert all(r[2] > 0 for r in rows)
    assert (tmp_path / "m.keras").is_file()


def test_same_seed_gives_identical_losses_and_another_seed_does_not(data, tmp_path):
    first = [r[1]["loss"] for r in run(spec(seed=7), *data, tmp_path)[1]]
    again = [r[1]["loss"] for r in run(spec(seed=7), *data, tmp_path)[1]]
    other = [r[1]["loss"] for r in run(spec(seed=8), *data, tmp_path)[1]]
    assert first == again
    assert first != other


@pytest.mark.parametrize("kind", ["minmax", "standard"])
def test_normalization_is_fitted_on_training_data_and_saved_in_the_model(data, tmp_path, kind):
    import keras

    x, y = data
    run(spec(normalize=kind, epochs=1), x, y, tmp_path)
    loaded = keras.models.load_model(tmp_path / "m.keras")
    normalize = keras.Model(loaded.inputs, loaded.get_layer("epochly_normalize").output)
    scaled = normalize.predict(x, verbose=0)[:, 0]
    if kind == "minmax":
        assert scaled.min() == pytest.approx(0.0, abs=1e-6) and scaled.max() == pytest.approx(1.0, abs=1e-6)
    else:
        assert scaled.mean() == pytest.approx(0.0, abs=1e-4) and scaled.std() == pytest.approx(1.0, abs=1e-3)


def test_nan_loss_stops_training_with_a_clear_error(tmp_path):
    x = np.full((32, 2), np.float32(1e30))
    y = np.full((32,), np.float32(1e30))
    bad = TrainingSpec.model_validate(
        {"model": {"layers": [{"type": "Dense", "units": 1}]}, "compile": {"optimizer": "sgd", "loss": "mse"}, "fit": {"epochs": 3}}
    )
    with pytest.raises(NonFiniteLoss, match="loss became"):
        run(bad, x, y, tmp_path)


def test_stop_request_ends_training_at_the_next_batch_and_keeps_finished_epochs(data, tmp_path):
    # 200 samples / batch 16 = 13 batches per epoch; ask to stop in the middle of epoch 2.
    hooks = RecordingHooks(stop_at_batch=13 + 5)
    outcome, rows = run(spec(epochs=5, steps_per_execution=1), *data, tmp_path, hooks)
    assert outcome is Outcome.CANCELLED
    assert [r[0] for r in rows] == [1]
    assert hooks.batches_seen == 18  # not one batch more
    assert not (tmp_path / "m.keras").exists()


class HandBackAfter(RecordingHooks):
    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.hand_back_after = epoch

    def should_hand_back(self):
        return bool(self.rows) and self.rows[-1][0] >= self.hand_back_after


def resumable_spec() -> TrainingSpec:
    return TrainingSpec.model_validate(
        {
            "model": {"layers": [
                {"type": "Dense", "units": 16, "activation": "relu"},
                {"type": "Dropout", "rate": 0.3},
                {"type": "Dense", "units": 2, "activation": "softmax"},
            ]},
            "compile": {"optimizer": {"type": "Adam", "learning_rate": 0.01}, "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]},
            "fit": {"epochs": 6, "batch_size": 16, "validation_split": 0.2, "seed": 3, "normalize": "minmax"},
        }
    )


def test_a_run_resumed_from_its_checkpoint_matches_an_uninterrupted_run_exactly(data, tmp_path):
    """Weights, optimizer state, epoch counter, data order and dropout RNG all come back: tolerance 0."""
    x, y = data
    whole = RecordingHooks()
    assert train(resumable_spec(), x, y, reporter=EpochReporter(whole), model_path=tmp_path / "a.keras") is Outcome.COMPLETED

    checkpoint = Checkpoint(LocalStore(tmp_path), "ckpt", tmp_path / "scratch")
    first = HandBackAfter(3)
    outcome = train(resumable_spec(), x, y, reporter=EpochReporter(first), model_path=tmp_path / "b.keras", checkpoint=checkpoint)
    assert outcome is Outcome.HANDED_BACK and [r[0] for r in first.rows] == [1, 2, 3]
    rest = RecordingHooks()  # a fresh process would start the same way: nothing but the checkpoint
    outcome = train(resumable_spec(), x, y, reporter=EpochReporter(rest), model_path=tmp_path / "b.keras", checkpoint=checkpoint)
    assert outcome is Outcome.COMPLETED and [r[0] for r in rest.rows] == [4, 5, 6]

    resumed = [r[1] for r in first.rows + rest.rows]
    assert resumed == [r[1] for r in whole.rows]  # every loss, accuracy, val_loss, val_accuracy, bit for bit


def test_several_steps_per_execution_give_identical_numbers(data, tmp_path):
    one = [r[1] for r in run(spec(steps_per_execution=1), *data, tmp_path)[1]]
    auto = [r[1] for r in run(spec(), *data, tmp_path)[1]]
    assert auto == one


def test_streaming_from_a_memory_map_gives_the_in_memory_numbers(data, tmp_path):
    x, y = data
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    mapped_x, mapped_y = np.load(tmp_path / "x.npy", mmap_mode="r"), np.load(tmp_path / "y.npy", mmap_mode="r")
    in_memory = [r[1] for r in run(spec(validation_split=0.2, normalize="standard"), x, y, tmp_path)[1]]
    hooks = RecordingHooks()
    streamed_spec = spec(validation_split=0.2, normalize="standard")
    assert train(streamed_spec, mapped_x, mapped_y, reporter=EpochReporter(hooks), model_path=tmp_path / "s.keras", in_memory=False) is Outcome.COMPLETED
    for a, b in zip(in_memory, [r[1] for r in hooks.rows], strict=True):
        assert a == pytest.approx(b, rel=1e-5, abs=1e-6)


def test_numbers_are_identical_for_any_steps_per_execution_with_validation_and_a_partial_last_batch(data, tmp_path):
    # 160 training samples / batch 16 = 10 batches; 3, 4 and 32 steps per execution all end an epoch mid-execution.
    runs = [
        [r[1] for r in run(spec(validation_split=0.2, epochs=4, steps_per_execution=steps), *data, tmp_path)[1]]
        for steps in (1, 3, 4, None)
    ]
    assert all(numbers == runs[0] for numbers in runs[1:])
    assert "val_loss" in runs[0][0]


class CrashAfter(RecordingHooks):
    """Dies in the middle of epoch `epoch` + 1, as a worker killed with SIGKILL would: no hand-back,
    nothing after the last checkpoint survives."""

    def __init__(self, epoch: int, batches_per_epoch: int) -> None:
        super().__init__()
        self.crash_at = epoch * batches_per_epoch + 1

    def should_stop(self):
        super().should_stop()
        if self.batches_seen >= self.crash_at:
            raise KeyboardInterrupt("killed")
        return False


@pytest.mark.parametrize("steps_per_execution", [1, None])
def test_a_run_killed_mid_epoch_resumes_from_its_last_checkpoint_with_identical_numbers(data, tmp_path, steps_per_execution):
    x, y = data
    training_spec = resumable_spec().model_copy(
        update={"fit": resumable_spec().fit.model_copy(update={"steps_per_execution": steps_per_execution})}
    )
    whole = RecordingHooks()
    train(training_spec, x, y, reporter=EpochReporter(whole), model_path=tmp_path / "a.keras")

    checkpoint = Checkpoint(LocalStore(tmp_path), "ckpt", tmp_path / "scratch")
    crashed = CrashAfter(2, batches_per_epoch=10 if steps_per_execution == 1 else 1)
    with pytest.raises(KeyboardInterrupt):
        train(training_spec, x, y, reporter=EpochReporter(crashed), model_path=tmp_path / "b.keras", checkpoint=checkpoint)
    assert [r[0] for r in crashed.rows] == [1, 2]  # every epoch that ended was reported as it ended
    rest = RecordingHooks()  # a new process: nothing but the checkpoint of epoch 2 (checkpoint_interval_s=0)
    outcome = train(training_spec, x, y, reporter=EpochReporter(rest), model_path=tmp_path / "b.keras", checkpoint=checkpoint)
    assert outcome is Outcome.COMPLETED and [r[0] for r in rest.rows] == [3, 4, 5, 6]
    assert [r[1] for r in crashed.rows + rest.rows] == [r[1] for r in whole.rows]


def test_each_epoch_is_reported_as_it_ends_not_when_training_ends(data, tmp_path):
    class WhenReported(RecordingHooks):
        def epoch_finished(self, epoch, logs, duration_s):
            super().epoch_finished(epoch, logs, duration_s)
            self.seen_at.append(self.batches_seen)

    hooks = WhenReported()
    hooks.seen_at = []
    run(spec(epochs=3, steps_per_execution=1), *data, tmp_path, hooks)
    assert hooks.seen_at == [13, 26, 39]  # 13 batches per epoch


def test_cancel_stops_within_one_execution(data, tmp_path):
    # 13 batches per epoch in executions of 5, 5 and 3: asked at the end of epoch 2's first execution.
    hooks = RecordingHooks(stop_at_batch=4)
    reporter = EpochReporter(hooks)
    outcome = train(spec(epochs=5, steps_per_execution=5), *data, reporter=reporter, model_path=tmp_path / "m.keras")
    assert outcome is Outcome.CANCELLED
    assert [r[0] for r in hooks.rows] == [1]
    assert hooks.batches_seen == 4
    assert int(reporter.model.optimizer.iterations) == 13 + 5  # no step after the execution that saw the request


class EndAfter(RecordingHooks):
    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.end_after = epoch

    def should_end(self):
        return bool(self.rows) and self.rows[-1][0] >= self.end_after


def test_a_pruned_trial_ends_after_the_epoch_and_keeps_its_model(data, tmp_path):
    hooks = EndAfter(2)
    outcome, rows = run(spec(epochs=6), *data, tmp_path, hooks)
    assert outcome is Outcome.PRUNED
    assert [r[0] for r in rows] in ([1, 2], [1, 2, 3])
    assert (tmp_path / "m.keras").is_file()


@pytest.mark.parametrize("in_memory", [True, False])
def test_each_epoch_feeds_the_batches_of_its_own_permutation(in_memory, tmp_path):
    from app.training.trainer import EpochBatches, epoch_order

    x = np.arange(23, dtype=np.float64).reshape(23, 1)
    y = {"a": np.arange(23, dtype=np.int32), "b": np.arange(23, dtype=np.float32) * 2}
    if not in_memory:
        np.save(tmp_path / "x.npy", x)
        x = np.load(tmp_path / "x.npy", mmap_mode="r")
    batches = EpochBatches(x, y, 5, seed=11, shuffle=True, in_memory=in_memory)
    dataset = batches.dataset()
    assert int(dataset.cardinality()) == 5
    for epoch in (0, 3, 1):
        batches.epoch = epoch
        order = epoch_order(11, epoch, 23)
        seen = list(dataset)
        assert [len(b[0]) for b in seen] == [5, 5, 5, 5, 3]
        assert np.concatenate([b[0].numpy()[:, 0] for b in seen]).tolist() == order.astype(np.float32).tolist()
        assert seen[0][0].dtype.name == "float32"
        assert np.concatenate([b[1]["a"].numpy() for b in seen]).tolist() == order.tolist()
        assert np.concatenate([b[1]["b"].numpy() for b in seen]).tolist() == (order * 2).astype(np.float32).tolist()
