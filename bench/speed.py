"""Figure 2, beat raw Keras: Epochly's trainer against the plain `model.fit` a user would write.

In one process, alternating runs, medians: (a) the tutorial (batch 10, dispatch-bound), target
≥ 2.5x; (b) a bigger job, 200k × 20 features, MLP 256-256-10 softmax, batch 256, 3 epochs,
target ≥ 1.3x. Also checks that Epochly's speed-up changes no number: its per-epoch losses with
the default steps_per_execution equal those with steps_per_execution=1, bit for bit.

XLA, measured separately: the tutorial's own `fit` with `jit_compile=True` against the same `fit`
without, in the same alternating runs. On this 2-core CPU it is slower (its compile costs more than it
saves on 4,200 tiny steps), which is why Epochly offers no `fit.jit_compile`.
Usage: python -m bench.speed [--runs 3] [--big-rows 200000]
"""
import argparse
import tempfile
from pathlib import Path

import numpy as np

from app.examples import side_effects
from app.specs import TUTORIAL_COMPILE, TUTORIAL_FIT, TUTORIAL_LAYERS, TrainingSpec
from app.training.trainer import EpochReporter, NullHooks, train
from bench.common import median, report, timed, tutorial_plain_fit


class Recorder(NullHooks):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def epoch_finished(self, epoch: int, logs: dict[str, float], duration_s: float) -> None:
        self.losses.append(logs["loss"])


def epochly(spec: TrainingSpec, x: np.ndarray, y: np.ndarray) -> tuple[float, list[float]]:
    recorder = Recorder()
    with tempfile.TemporaryDirectory() as tmp:
        seconds, _ = timed(lambda: train(spec, x, y, reporter=EpochReporter(recorder), model_path=Path(tmp) / "m.keras"))
    return seconds, recorder.losses


def tutorial_plain_fit_xla(x: np.ndarray, y: np.ndarray, seed: int = 0) -> float:
    """bench.common.tutorial_plain_fit with the train step compiled by XLA."""
    import keras

    keras.utils.set_random_seed(seed)
    scaled = (x - x.min()) / (x.max() - x.min())
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(32, activation="relu"), keras.layers.Dense(2, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.0001), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], jit_compile=True)
    return timed(lambda: model.fit(scaled, y, batch_size=10, epochs=20, shuffle=True, verbose=0))[0]


def big_plain_fit(x: np.ndarray, y: np.ndarray) -> float:
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((x.shape[1],)), keras.layers.Dense(256, activation="relu"),
                              keras.layers.Dense(256, activation="relu"), keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return timed(lambda: model.fit(x, y, batch_size=256, epochs=3, shuffle=True, verbose=0))[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--big-rows", type=int, default=200_000)
    args = parser.parse_args()

    x, y = side_effects()
    tutorial = TrainingSpec.model_validate({"model": {"layers": TUTORIAL_LAYERS}, "compile": TUTORIAL_COMPILE, "fit": TUTORIAL_FIT})
    one_step = tutorial.model_copy(update={"fit": tutorial.fit.model_copy(update={"steps_per_execution": 1})})
    rng = np.random.default_rng(0)
    big_x = rng.normal(size=(args.big_rows, 20)).astype(np.float32)
    big_y = rng.integers(0, 10, args.big_rows).astype(np.int32)
    big = TrainingSpec.model_validate({
        "model": {"layers": [{"type": "Dense", "units": 256, "activation": "relu"}, {"type": "Dense", "units": 256, "activation": "relu"},
                             {"type": "Dense", "units": 10, "activation": "softmax"}]},
        "compile": {"optimizer": "adam", "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]},
        "fit": {"epochs": 3, "batch_size": 256},
    })

    plain_s, ours_s, big_plain_s, big_ours_s, xla_s = [], [], [], [], []
    identical = True
    for run in range(args.runs):
        seconds, _ = tutorial_plain_fit(x, y)
        plain_s.append(seconds)
        seconds, losses = epochly(tutorial, x, y)
        ours_s.append(seconds)
        identical &= losses == epochly(one_step, x, y)[1]
        xla_s.append(tutorial_plain_fit_xla(x, y))
        big_plain_s.append(big_plain_fit(big_x, big_y))
        big_ours_s.append(epochly(big, big_x, big_y)[0])
        print(f"run {run + 1}: tutorial plain {plain_s[-1]:.2f} s, epochly {ours_s[-1]:.2f} s, plain with XLA {xla_s[-1]:.2f} s; "
              f"big plain {big_plain_s[-1]:.2f} s, epochly {big_ours_s[-1]:.2f} s")
    tutorial_x = median(plain_s) / median(ours_s)
    big_speedup = median(big_plain_s) / median(big_ours_s)
    print(f"tutorial: {tutorial_x:.2f}x faster than its own fit (target >= 2.5x); "
          f"bigger job: {big_speedup:.2f}x (target >= 1.3x); losses identical to steps_per_execution=1: {identical}; "
          f"XLA makes the tutorial's own fit {median(plain_s) / median(xla_s):.2f}x as fast")
    report({
        "figure": "2. beat raw Keras", "tutorial_speedup": round(tutorial_x, 2), "target_tutorial": 2.5,
        "big_speedup": round(big_speedup, 2), "target_big": 1.3, "losses_bit_identical_across_steps_per_execution": identical,
        "tutorial_plain_s": round(median(plain_s), 2), "tutorial_epochly_s": round(median(ours_s), 2),
        "tutorial_plain_xla_s": round(median(xla_s), 2), "xla_speedup_of_plain_fit": round(median(plain_s) / median(xla_s), 2),
        "met": tutorial_x >= 2.5 and big_speedup >= 1.3 and identical,
    })


if __name__ == "__main__":
    main()
