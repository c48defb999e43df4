"""The Keras tutorial's job, as `epochly example` submits it (tests keep it equal to the server's example)."""

from typing import Any

TUTORIAL_JOB: dict[str, Any] = {
    "name": "side-effects tutorial",
    "model": {
        "layers": [
            {"type": "Dense", "units": 16, "activation": "relu", "input_shape": [1]},
            {"type": "Dense", "units": 32, "activation": "relu"},
            {"type": "Dense", "units": 2, "activation": "sigmoid"},
        ]
    },
    "compile": {
        "optimizer": {"type": "Adam", "learning_rate": 0.0001},
        "loss": "sparse_categorical_crossentropy",
        "metrics": ["accuracy"],
    },
    "fit": {"epochs": 20, "batch_size": 10, "shuffle": True, "validation_split": 0.0, "seed": 0, "normalize": "minmax"},
}
