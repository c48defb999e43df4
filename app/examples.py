"""The Keras tutorial's data set: a drug trial where older patients tend to see side effects."""

import numpy as np

SIDE_EFFECTS_NAME = "side-effects"
SIDE_EFFECTS_SEED = 0


def side_effects(seed: int = SIDE_EFFECTS_SEED) -> tuple[np.ndarray, np.ndarray]:
    """2100 patients aged 13–100; label 1 means side effects. 95 % follow the age rule, 5 % do not."""
    rng = np.random.default_rng(seed)
    ages: list[int] = []
    labels: list[int] = []
    for _ in range(50):  # the outliers: young with side effects, old without
        ages += [int(rng.integers(13, 65)), int(rng.integers(65, 101))]
        labels += [1, 0]
    for _ in range(1000):  # the rule: young without side effects, old with
        ages += [int(rng.integers(13, 65)), int(rng.integers(65, 101))]
        labels += [0, 1]
    x = np.asarray(ages, dtype=np.float32).reshape(-1, 1)
    y = np.asarray(labels, dtype=np.int32)
    order = rng.permutation(len(x))  # the tutorial shuffles before training
    return x[order], y[order]
