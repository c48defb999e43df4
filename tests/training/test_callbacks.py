"""Callbacks as data, the best epoch, learning rates in rows, a validation dataset and class weights,
trained in-process."""
import copy
import itertools

import keras
import numpy as np
import pydantic
import pytest

from app.specs import FitSpec, TrainingSpec
from app.storage import LocalStore
from app.training.builder import build_model, compile_model
from app.training.checkpoint import Checkpoint
from app.training.trainer import EpochReporter, Outcome, train
from app.training.validate import check_spec
from tests.training.test_trainer import HandBackAfter, RecordingHooks

BASE = {
    "model": {"layers": [{"type": "Dense", "units": 16, "activation": "relu"}, {"type": "Dropout", "rate": 0.2},
                         {"type": "Dense", "units": 2, "activation": "softmax"}]},
    "compile": {"optimizer": {"type": "Adam", "learning_rate": 0.05}, "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]},
    "fit": {"epochs": 40, "batch_size": 16, "seed": 5, "normalize": "standard", "validation_split": 0.3},
}
STOPPERS = [
    {"type": "EarlyStopping", "monitor": "val_loss", "patience": 3, "min_delta": 0.002, "restore_best_weights": True},
    {"type": "ReduceLROnPlateau", "monitor": "val_loss", "patience": 1, "factor": 0.5, "cooldown": 1},
]


def make_spec(**fit) -> TrainingSpec:
    raw = copy.deepcopy(BASE)
    raw["fit"].update(fit)
    return TrainingSpec.model_validate(raw)


@pytest.fixture
def noisy():
    """Labels with 20 % noise, so validation loss turns around and early stopping has something to do."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 3)).astype(np.float32)
    y = ((x[:, 0] + 0.5 * x[:, 1] > 0) ^ (rng.random(300) < 0.2)).astype(np.int32)
    return x, y


def fit_job(spec, x, y, tmp_path, hooks=None, **kwargs):
    hooks = hooks or RecordingHooks()
    reporter = EpochReporter(hooks)
    outcome = train(spec, x, y, reporter=reporter, model_path=tmp_path / "m.keras", **kwargs)
    return outcome, hooks.rows, reporter.callbacks


def keras_best_epoch(values: list[float], min_delta: float, start_from_epoch: int = 0) -> int:
    """EarlyStopping's rule for a minimised quantity, written out: better by more than min_delta."""
    best, best_epoch = None, None
    for epoch, value in enumerate(values, start=1):
        if epoch - 1 < start_from_epoch:
            continue
        if best is None or value - min_delta < best:
            best, best_epoch = value, epoch
    return best_epoch


def test_early_stopping_ends_the_job_before_its_epochs_and_names_the_best_epoch_by_keras_rule(noisy, tmp_path):
    outcome, rows, driver = fit_job(make_spec(callbacks=STOPPERS), *noisy, tmp_path)
    assert outcome is Outcome.EARLY_STOPPED
    assert 3 < len(rows) < 40
    val_losses = [r[1]["val_loss"] for r in rows]
    assert driver.best_epoch == keras_best_epoch(val_losses, 0.002)
    assert driver.best == rows[driver.best_epoch - 1][1]
    # Stopped exactly when patience ran out after the best epoch (no improvement beyond min_delta since).
    assert len(rows) == driver.best_epoch + 3
    assert (tmp_path / "m.keras").is_file()


def test_the_same_callbacks_in_one_plain_keras_fit_stop_at_the_same_epoch(noisy, tmp_path):
    """Driving the callbacks across per-epoch fits is what one uninterrupted Keras fit does."""
    x, y = noisy
    spec = make_spec(callbacks=STOPPERS, shuffle=False, steps_per_execution=1)
    _, rows, _ = fit_job(spec, x, y, tmp_path)

    keras.backend.clear_session()
    keras.utils.set_random_seed(5)
    n_train = 210
    model = build_model(spec, x.shape[1:], x[:n_train])
    compile_model(model, spec.compile, steps_per_execution=1)
    history = model.fit(
        x[:n_train], y[:n_train], batch_size=16, epochs=40, shuffle=False, validation_data=(x[n_train:], y[n_train:]), verbose=0,
        callbacks=[keras.callbacks.EarlyStopping(monitor="val_loss", patience=3, min_delta=0.002, restore_best_weights=True),
                   keras.callbacks.ReduceLROnPlateau(monitor="val_loss", patience=1, factor=0.5, cooldown=1)],
    )
    assert len(rows) == len(history.history["loss"])
    assert [r[1]["loss"] for r in rows] == pytest.approx(history.history["loss"], rel=1e-5)
    assert [r[1]["learning_rate"] for r in rows] == pytest.approx(history.history["learning_rate"], rel=1e-6)


def test_each_row_holds_the_learning_rate_it_trained_with_so_a_plateau_cut_shows(noisy, tmp_path):
    _, rows, _ = fit_job(make_spec(callbacks=STOPPERS[1:], epochs=12), *noisy, tmp_path)
    rates = [r[1]["learning_rate"] for r in rows]
    assert rates[0] == pytest.approx(0.05)
    assert min(rates) < 0.05  # cut at least once
    assert all(b in (pytest.approx(a), pytest.approx(a * 0.5)) for a, b in itertools.pairwise(rates))


def test_restore_best_weights_leaves_the_best_epochs_weights_in_the_saved_model(noisy, tmp_path):
    x, y = noisy
    _, rows, driver = fit_job(make_spec(callbacks=STOPPERS[:1]), x, y, tmp_path)
    model = keras.models.load_model(tmp_path / "m.keras")
    val_loss = model.evaluate(x[210:], y[210:], verbose=0, return_dict=True)["loss"]
    assert driver.best_epoch < len(rows)
    assert val_loss == pytest.approx(rows[driver.best_epoch - 1][1]["val_loss"], rel=1e-5)
    assert val_loss != pytest.approx(rows[-1][1]["val_loss"], rel=1e-5)


def test_a_job_without_callbacks_still_names_its_best_epoch_by_val_loss(noisy, tmp_path):
    outcome, rows, driver = fit_job(make_spec(epochs=6), *noisy, tmp_path)
    assert outcome is Outcome.COMPLETED and len(rows) == 6
    assert driver.best_epoch == keras_best_epoch([r[1]["val_loss"] for r in rows], 0.0)


def test_resume_restores_callback_state_and_stops_at_the_same_epoch_with_the_same_losses(noisy, tmp_path):
    x, y = noisy
    spec = make_spec(callbacks=STOPPERS)
    whole_outcome, whole, whole_driver = fit_job(spec, x, y, tmp_path)
    assert whole_outcome is Outcome.EARLY_STOPPED

    # Hand back after an epoch where the wait counter, the cooldown and the best weights all matter.
    checkpoint = Checkpoint(LocalStore(tmp_path), "ckpt", tmp_path / "scratch")
    hand_back_after = max(2, whole_driver.best_epoch + 1)
    first = HandBackAfter(hand_back_after)
    outcome, _, _ = fit_job(spec, x, y, tmp_path, hooks=first, checkpoint=checkpoint)
    assert outcome is Outcome.HANDED_BACK
    rest = RecordingHooks()
    outcome, _, driver = fit_job(spec, x, y, tmp_path, hooks=rest, checkpoint=checkpoint)
    assert outcome is Outcome.EARLY_STOPPED
    assert [r[1] for r in first.rows + rest.rows] == [r[1] for r in whole]  # bit for bit, learning rates included
    assert (driver.best_epoch, driver.best) == (whole_driver.best_epoch, whole_driver.best)
    model = keras.models.load_model(tmp_path / "m.keras")
    assert model.evaluate(x[210:], y[210:], verbose=0, return_dict=True)["loss"] == pytest.approx(whole_driver.best["val_loss"], rel=1e-5)


def test_a_validation_dataset_gives_val_metrics_and_is_scaled_with_training_statistics(noisy, tmp_path):
    x, y = noisy
    x_val, y_val = x[:50] * 10 + 100, y[:50]  # far from the training data: its own statistics would differ
    spec = make_spec(validation_split=0.0, validation_dataset_id="ds_x", epochs=2)
    _, rows, _ = fit_job(spec, x, y, tmp_path, validation_data=(x_val, y_val))
    assert {"val_loss", "val_accuracy"} <= set(rows[0][1])
    model = keras.models.load_model(tmp_path / "m.keras")
    mean = model.get_layer("epochly_normalize").mean
    assert np.asarray(mean).ravel() == pytest.approx(x.mean(axis=0), abs=1e-4)
    assert rows[-1][1]["val_loss"] == pytest.approx(model.evaluate(x_val, y_val, verbose=0, return_dict=True)["loss"], rel=1e-5)


def test_class_weight_weights_the_loss_as_keras_does(noisy, tmp_path):
    x, y = noisy
    weighted = make_spec(epochs=2, validation_split=0.0, shuffle=False, steps_per_execution=1, class_weight={"0": 1.0, "1": 3.0})
    _, rows, _ = fit_job(weighted, x, y, tmp_path)

    keras.backend.clear_session()
    keras.utils.set_random_seed(5)
    model = build_model(weighted, x.shape[1:], x)
    compile_model(model, weighted.compile, steps_per_execution=1)
    history = model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0, class_weight={0: 1.0, 1: 3.0})
    assert [r[1]["loss"] for r in rows] == pytest.approx(history.history["loss"], rel=1e-5)
    _, plain, _ = fit_job(make_spec(epochs=2, validation_split=0.0, shuffle=False, steps_per_execution=1), x, y, tmp_path)
    assert plain[0][1]["loss"] != pytest.approx(rows[0][1]["loss"], rel=1e-3)


@pytest.mark.parametrize("refused", ["LambdaCallback", "ModelCheckpoint", "TensorBoard", "CSVLogger", "BackupAndRestore", "my.Custom"])
def test_callbacks_outside_the_allow_list_are_refused_at_their_type(refused):
    with pytest.raises(pydantic.ValidationError) as caught:
        FitSpec.model_validate({"callbacks": [{"type": "TerminateOnNaN"}, {"type": refused, "filepath": "/etc/passwd"}]})
    [error] = caught.value.errors()
    assert error["loc"][:2] == ("callbacks", 1) and error["loc"][-1] == "type"
    assert refused in error["msg"]


def test_early_stopping_takes_every_keras_argument_and_nothing_else():
    every = {"type": "EarlyStopping", "monitor": "val_accuracy", "min_delta": 0.01, "patience": 2, "mode": "max",
             "baseline": 0.6, "restore_best_weights": True, "start_from_epoch": 3}
    assert FitSpec.model_validate({"callbacks": [every]}).callbacks[0].model_dump() == every
    with pytest.raises(pydantic.ValidationError, match="patiense"):
        FitSpec.model_validate({"callbacks": [{"type": "EarlyStopping", "patiense": 2}]})


@pytest.mark.parametrize("weights", [{"0": 1.0, "2": 1.0}, {"a": 1.0}, {"0": -1.0}])
def test_class_weight_needs_every_class_index_with_a_non_negative_weight(weights):
    with pytest.raises(pydantic.ValidationError):
        FitSpec.model_validate({"class_weight": weights})


def spec_problems(**fit):
    x = np.random.default_rng(0).normal(size=(32, 3)).astype(np.float32)
    raw = copy.deepcopy(BASE)
    raw["fit"] = {"epochs": 2, **fit}
    return check_spec(raw, x, (x[:, 0] > 0).astype(np.int32))


def test_a_monitor_the_model_does_not_report_is_refused_at_submit():
    assert spec_problems(validation_split=0.2, callbacks=[{"type": "EarlyStopping", "monitor": "val_accuracy"}]) == []
    [problem] = spec_problems(callbacks=[{"type": "EarlyStopping"}])  # val_loss, with no validation data
    assert problem["path"] == "fit.callbacks[0].monitor" and "validation" in problem["message"]
    [problem] = spec_problems(validation_split=0.2, callbacks=[{"type": "TerminateOnNaN"}, {"type": "ReduceLROnPlateau", "monitor": "auc"}])
    assert problem["path"] == "fit.callbacks[1].monitor"


def test_learning_rate_schedules_work_through_the_optimizer(noisy, tmp_path):
    raw = copy.deepcopy(BASE)
    raw["compile"]["optimizer"]["learning_rate"] = {"type": "ExponentialDecay", "initial_learning_rate": 0.05, "decay_steps": 5, "decay_rate": 0.5}
    raw["fit"]["epochs"] = 3
    _, rows, _ = fit_job(TrainingSpec.model_validate(raw), *noisy, tmp_path)
    rates = [r[1]["learning_rate"] for r in rows]
    assert rates[0] > rates[1] > rates[2]


@pytest.mark.parametrize(("patience", "outcome", "epochs_run"), [(2, Outcome.EARLY_STOPPED, 3), (3, Outcome.COMPLETED, 4)])
def test_a_stop_on_the_last_epoch_is_a_completed_job(noisy, tmp_path, patience, outcome, epochs_run):
    # No epoch after the first improves by 10^9, so the stop comes after exactly `patience` epochs:
    # before the last of 4 epochs, or on it (where Keras marks a stop too, but every epoch ran).
    never_better = {"type": "EarlyStopping", "monitor": "loss", "patience": patience, "min_delta": 1e9}
    spec = make_spec(epochs=4, callbacks=[never_better])
    result, rows, _ = fit_job(spec, *noisy, tmp_path)
    assert (result, len(rows)) == (outcome, epochs_run)
