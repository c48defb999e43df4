"""Keras' compile options, enumerated from the installed Keras and trained by the real worker:

- every loss class in `keras.losses`, with arguments, each on an output of its own in one model (one
  job trains them all), with metrics as names and as objects, `weighted_metrics`, and one-hot labels
  under `categorical_crossentropy` by name;
- every optimizer class in `keras.optimizers`, one job each, the named learning-rate schedules spread
  over them in both forms (`{"type": ...}` and Keras' own serialized `{"class_name", "config"}`); each
  epoch's `learning_rate` in the logs is the schedule's value at that epoch's last step."""

import keras
import numpy as np
import pytest

from app.training.registry import loss_classes, optimizer_classes, schedule_classes
from tests.integration.test_keras_catalogue import upload
from tests.integration.test_training_e2e import wait_until_done

pytestmark = pytest.mark.parametrize("backend", ["embedded"], indirect=True)
SAMPLES, FEATURES, BATCH, EPOCHS = 24, 8, 8, 2
STEPS_PER_EPOCH = SAMPLES // BATCH

# Not trainable from a spec, and why (the classes are abstract or take Python objects).
NOT_FROM_A_SPEC = {
    "Loss": "the abstract base of every loss",
    "Optimizer": "the abstract base of every optimizer",
    "MultiOptimizer": "takes a Python OptimizerMap or a function that picks an optimizer per variable",
}


def _labels() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    classes = np.arange(SAMPLES) % 3
    one_hot = np.eye(3, dtype=np.float32)[classes]
    binary = (np.arange(SAMPLES) % 2).astype(np.float32)[:, None]
    masks = (rng.random((SAMPLES, 4)) > 0.5).astype(np.float32)
    return {
        "sparse": classes,
        "one_hot": one_hot,
        "binary": binary,
        "signed": binary * 2 - 1,
        "masks": masks,
        "real": rng.normal(size=(SAMPLES, 1)).astype(np.float32),
        "positive": rng.uniform(1, 2, size=(SAMPLES, 1)).astype(np.float32),
        "vectors": rng.normal(size=(SAMPLES, 3)).astype(np.float32),
        "distributions": rng.dirichlet(np.ones(3), size=SAMPLES).astype(np.float32),
        "sequences": rng.integers(1, 5, size=(SAMPLES, 3)).astype(np.float32),
    }


# Loss class → (its arguments, the labels it takes, the output's units and activation).
LOSSES: dict[str, tuple[dict, str, int, str | None]] = {
    "BinaryCrossentropy": ({"from_logits": True, "label_smoothing": 0.1}, "binary", 1, None),
    "BinaryFocalCrossentropy": ({"gamma": 2.0, "apply_class_balancing": True}, "binary", 1, "sigmoid"),
    "CategoricalCrossentropy": ({"label_smoothing": 0.1}, "one_hot", 3, "softmax"),
    "CategoricalFocalCrossentropy": ({"gamma": 2.0}, "one_hot", 3, "softmax"),
    "CategoricalGeneralizedCrossEntropy": ({"q": 0.7}, "sparse", 3, "softmax"),
    "CategoricalHinge": ({}, "one_hot", 3, None),
    "Circle": ({"gamma": 80.0, "margin": 0.4}, "sparse", 4, None),
    "CosineSimilarity": ({"axis": -1}, "vectors", 3, None),
    "Dice": ({"axis": None}, "masks", 4, "sigmoid"),
    "Hinge": ({}, "signed", 1, None),
    "Huber": ({"delta": 0.5}, "real", 1, None),
    "KLDivergence": ({}, "distributions", 3, "softmax"),
    "LogCosh": ({}, "real", 1, None),
    "MeanAbsoluteError": ({}, "real", 1, None),
    "MeanAbsolutePercentageError": ({}, "positive", 1, "softplus"),
    "MeanSquaredError": ({}, "real", 1, None),
    "MeanSquaredLogarithmicError": ({}, "positive", 1, "softplus"),
    "Poisson": ({}, "positive", 1, "softplus"),
    "SparseCategoricalCrossentropy": ({"from_logits": True, "ignore_class": None}, "sparse", 3, None),
    "SquaredHinge": ({}, "signed", 1, None),
    "Tversky": ({"alpha": 0.3, "beta": 0.7}, "masks", 4, "sigmoid"),
}
# CTC's output is a sequence of class scores, and its labels sequences of class ids (0 is the blank).
CTC_TIMESTEPS, CTC_CLASSES = 6, 5


def losses_model() -> keras.Model:
    inputs = keras.Input((FEATURES,))
    hidden = keras.layers.Dense(16, activation="relu")(inputs)
    outputs = {
        name.lower(): keras.layers.Dense(units, activation=activation, name=name.lower())(hidden)
        for name, (_, _, units, activation) in LOSSES.items()
    }
    sequence = keras.layers.RepeatVector(CTC_TIMESTEPS)(hidden)
    outputs["ctc"] = keras.layers.Dense(CTC_CLASSES, activation="softmax", name="ctc")(sequence)
    outputs["one_hot_by_name"] = keras.layers.Dense(3, activation="softmax", name="one_hot_by_name")(hidden)
    return keras.Model(inputs, outputs)


def losses_dataset() -> dict[str, np.ndarray]:
    labels = _labels()
    arrays = {"x": np.random.default_rng(4).normal(size=(SAMPLES, FEATURES)).astype(np.float32)}
    arrays |= {f"y_{name.lower()}": labels[kind] for name, (_, kind, _, _) in LOSSES.items()}
    arrays["y_ctc"] = labels["sequences"]
    arrays["y_one_hot_by_name"] = labels["one_hot"]
    return arrays


def losses_compile() -> dict:
    loss = {name.lower(): {"type": name, **kwargs} for name, (kwargs, _, _, _) in LOSSES.items()}
    loss["ctc"] = {"type": "CTC"}
    loss["one_hot_by_name"] = "categorical_crossentropy"
    return {
        "optimizer": "adam",
        "loss": loss,
        "metrics": {
            "binarycrossentropy": [
                {"type": "AUC", "from_logits": True},
                {"type": "Precision", "thresholds": 0.0},
                {"type": "Recall", "thresholds": 0.0},
            ],
            "sparsecategoricalcrossentropy": [{"type": "SparseTopKCategoricalAccuracy", "k": 2}],
            "one_hot_by_name": ["accuracy", "categorical_accuracy"],
            "huber": ["mae"],
        },
        "weighted_metrics": {"meansquarederror": ["mse"]},
    }


def epoch_logs(own_live, job_id: str) -> list[dict]:
    return [row["logs"] for row in own_live.get(f"/v1/jobs/{job_id}/metrics").json()["epochs"]]


def test_every_loss_class_trains_on_an_output_of_its_own_with_metric_objects(own_live):
    covered = {*LOSSES, "CTC"}
    assert set(loss_classes()) - covered - set(NOT_FROM_A_SPEC) == set(), "a new keras.losses class: give it labels here"

    spec = {
        "dataset_id": upload(own_live, losses_dataset()),
        "model": {"keras_json": losses_model().to_json()},
        "compile": losses_compile(),
        "fit": {"epochs": EPOCHS, "batch_size": BATCH},
    }
    response = own_live.post("/v1/jobs", json=spec)
    assert response.status_code == 202, response.text
    job = wait_until_done(own_live, response.json()["id"], timeout_s=240)
    assert job["status"] == "succeeded", job["error"]
    logs = epoch_logs(own_live, job["id"])[-1]
    for name in [*(n.lower() for n in LOSSES), "ctc", "one_hot_by_name"]:
        assert np.isfinite(logs[f"{name}_loss"]), name
    assert {"binarycrossentropy_auc", "binarycrossentropy_precision", "binarycrossentropy_recall"} <= set(logs)
    assert "sparsecategoricalcrossentropy_sparse_top_k_categorical_accuracy" in logs
    assert 0.0 <= logs["one_hot_by_name_accuracy"] <= 1.0 and "huber_mae" in logs
    assert "meansquarederror_mse" in logs, sorted(logs)


def _serialized(schedule: keras.optimizers.schedules.LearningRateSchedule) -> dict:
    return keras.optimizers.schedules.serialize(schedule)


SCHEDULES = {
    "ExponentialDecay": {"initial_learning_rate": 0.01, "decay_steps": 2, "decay_rate": 0.5},
    "CosineDecay": {"initial_learning_rate": 0.01, "decay_steps": 6, "alpha": 0.1},
    "CosineDecayRestarts": {"initial_learning_rate": 0.01, "first_decay_steps": 2},
    "InverseTimeDecay": {"initial_learning_rate": 0.01, "decay_steps": 1, "decay_rate": 0.5},
    "PiecewiseConstantDecay": {"boundaries": [STEPS_PER_EPOCH], "values": [0.01, 0.001]},
    "PolynomialDecay": {"initial_learning_rate": 0.01, "decay_steps": 6, "end_learning_rate": 0.001},
}


def optimizer_specs() -> dict[str, dict | str]:
    """Each optimizer class, the schedules spread over them, alternating the two forms a schedule takes."""
    specs: dict[str, dict | str] = {}
    schedules = list(SCHEDULES.items())
    names = [name for name in optimizer_classes() if name not in NOT_FROM_A_SPEC and name != "LossScaleOptimizer"]
    for index, name in enumerate(names):
        spec: dict = {"type": name}
        if index < len(schedules):
            kind, arguments = schedules[index]
            schedule = getattr(keras.optimizers.schedules, kind)(**arguments)
            spec["learning_rate"] = {"type": kind, **arguments} if index % 2 else _serialized(schedule)
        specs[name] = spec
    specs["LossScaleOptimizer"] = {"type": "LossScaleOptimizer", "inner_optimizer": {"type": "SGD", "learning_rate": 0.01}}
    return specs


def expected_rates(spec: dict) -> list[float] | None:
    rate = spec.get("learning_rate")
    if not isinstance(rate, dict):
        return None
    schedule = (
        keras.optimizers.schedules.deserialize(rate)
        if "class_name" in rate
        else getattr(keras.optimizers.schedules, rate["type"])(**{k: v for k, v in rate.items() if k != "type"})
    )
    return [float(schedule(epoch * STEPS_PER_EPOCH)) for epoch in range(1, EPOCHS + 1)]


def test_every_optimizer_class_trains_and_schedules_set_each_epochs_learning_rate(own_live):
    assert set(SCHEDULES) == set(schedule_classes()), "a new keras.optimizers.schedules class: add it here"
    specs = optimizer_specs()
    assert set(specs) | set(NOT_FROM_A_SPEC) >= set(optimizer_classes())

    rng = np.random.default_rng(5)
    dataset_id = upload(own_live, {"x": rng.normal(size=(SAMPLES, FEATURES)).astype(np.float32), "y": np.arange(SAMPLES) % 2})
    model = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(2)])
    jobs = {}
    for name, optimizer in specs.items():
        body = {
            "dataset_id": dataset_id,
            "model": {"keras_json": model.to_json()},
            "compile": {
                "optimizer": optimizer,
                "loss": {"type": "SparseCategoricalCrossentropy", "from_logits": True},
                "metrics": ["accuracy"],
            },
            "fit": {"epochs": EPOCHS, "batch_size": BATCH, "shuffle": False},
        }
        response = own_live.post("/v1/jobs", json=body)
        assert response.status_code == 202, f"{name}: {response.text}"
        jobs[name] = response.json()["id"]
    for name, job_id in jobs.items():
        job = wait_until_done(own_live, job_id, timeout_s=240)
        assert job["status"] == "succeeded", f"{name}: {job['error']}"
        logs = epoch_logs(own_live, job_id)
        assert all(np.isfinite(row["loss"]) for row in logs), name
        rates = expected_rates(specs[name]) if isinstance(specs[name], dict) else None
        if rates is not None:
            assert [row["learning_rate"] for row in logs] == pytest.approx(rates, rel=1e-5), name
