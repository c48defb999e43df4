"""Shared pieces of the benchmarks: the tutorial as plain Keras, medians, the RESULT line."""
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def report(result: dict[str, Any]) -> None:
    """The one line bench/run_all.py collects into bench/RESULTS.md."""
    print("RESULT: " + json.dumps(result), flush=True)


def tutorial_model() -> Any:
    """The tutorial's model and compile call."""
    import keras

    model = keras.Sequential([
        keras.Input((1,)),
        keras.layers.Dense(units=16, activation="relu"),
        keras.layers.Dense(units=32, activation="relu"),
        keras.layers.Dense(units=2, activation="sigmoid"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.0001), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def tutorial_plain_fit(x: np.ndarray, y: np.ndarray, seed: int = 0) -> tuple[float, list[float]]:
    """The tutorial's own code: ages scaled to 0–1 beforehand, Keras' shuffle, verbose off."""
    import keras

    keras.utils.set_random_seed(seed)
    scaled = (x - x.min()) / (x.max() - x.min())
    model = tutorial_model()
    seconds, history = timed(lambda: model.fit(scaled, y, batch_size=10, epochs=20, shuffle=True, verbose=0))
    return seconds, history.history["loss"]
