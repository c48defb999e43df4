"""Remote fit: the Keras tutorial's script with `model.fit` changed to `epochly_client.keras.fit`, end to
end, against the same script's local `model.fit`, in the same process on the same machine.

A live service (API, scheduler, one worker) on --backend. After one untimed 1-epoch warm-up of each
(TensorFlow's first trace, the worker's first job), --pairs pairs of the tutorial's fit (20 epochs,
batch 10, shuffle, verbose=0), each on a fresh model:

  local   = model.fit(scaled, labels, ...)
  remote  = epochly_client.keras.fit(model, scaled, labels, ...), from the call until it returns with
            the trained weights in the model: the spec from the model, hashing and uploading the
            arrays, submitting, following the events, downloading and loading the weights.
            The dataset is deleted after each pair, so every timed remote fit uploads its arrays.

ratio = remote / local per pair; the median of the pairs is the figure (target <= 1.0).
Then a second fit on the same arrays: the bytes it uploads (target 0) and what the first uploaded.
Usage: python -m bench.remote_fit [--pairs 3] [--backend embedded|postgres-redis]
"""

import argparse
import os
from typing import Any

import numpy as np

from bench.common import median, report, timed, tutorial_model
from bench.harness import service
from epochly_client import Client

RATIO_TARGET = 1.0
EPOCHS = 20


def seeded_tutorial_model() -> Any:
    import keras

    keras.utils.set_random_seed(0)
    return tutorial_model()


def main() -> None:
    import epochly_client.keras
    from app.examples import side_effects

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--backend", default="embedded")
    args = parser.parse_args()
    os.environ["RATE_LIMIT_PER_MIN"] = str(10**9)
    samples, labels = side_effects()
    scaled = (samples - samples.min()) / (samples.max() - samples.min())
    arguments = {"batch_size": 10, "shuffle": True, "verbose": 0}

    with service(args.backend, workers=1) as live, Client(live.url, api_key=live.key) as client:

        def remote(epochs: int) -> Any:
            return epochly_client.keras.fit(seeded_tutorial_model(), scaled, labels, epochs=epochs, client=client, **arguments)

        def forget(history: Any) -> None:
            client.delete_dataset(client.get(history.job_id).raw["dataset_id"])

        seeded_tutorial_model().fit(scaled, labels, epochs=1, **arguments)
        forget(remote(1))
        ratios = []
        for pair in range(args.pairs):
            local_s, _ = timed(lambda: seeded_tutorial_model().fit(scaled, labels, epochs=EPOCHS, **arguments))
            remote_s, history = timed(lambda: remote(EPOCHS))
            forget(history)
            ratios.append(remote_s / local_s)
            print(
                f"pair {pair + 1}: local fit {local_s:.2f} s, remote fit {remote_s:.2f} s (uploaded {history.uploaded_bytes:,} bytes), "
                f"ratio {ratios[-1]:.3f}; final loss {history.history['loss'][-1]:.4f}",
                flush=True,
            )
        first_s, first = timed(lambda: remote(EPOCHS))
        second_s, second = timed(lambda: remote(EPOCHS))
    ratio = median(ratios)
    print(
        f"remote/local median of {args.pairs} pairs: {ratio:.3f} (target <= {RATIO_TARGET}); a second fit on the same "
        f"arrays uploaded {second.uploaded_bytes:,} bytes (the first {first.uploaded_bytes:,}); {second_s:.2f} s vs {first_s:.2f} s",
        flush=True,
    )
    report({
        "figure": "remote_fit",
        "backend": args.backend,
        "ratio_median": round(ratio, 3),
        "ratios": [round(r, 3) for r in ratios],
        "second_fit_uploaded_bytes": second.uploaded_bytes,
        "first_fit_uploaded_bytes": first.uploaded_bytes,
        "met": ratio <= RATIO_TARGET and second.uploaded_bytes == 0 and bool(np.isfinite(second.history["loss"][-1])),
    })


if __name__ == "__main__":
    main()
