"""The code that runs inside the warm inference process: it loads `.keras` files into a byte-bounded
LRU and predicts or evaluates. Keras is imported here only inside functions, so the API can import
this module's names (to hand them to the process pool) without loading TensorFlow.

Arrays cross the process boundary as raw bytes with their dtype and shape (`Blob`), or as paths to
`.npy` files for big batches, never as pickled numpy objects."""

import os
from pathlib import Path
from typing import Any

import numpy as np

from app.inference.cache import ByteLRU

Blob = tuple[bytes, str, tuple[int, ...]]
Stamp = tuple[str, int, int]
# Rows per compiled predict call on big inputs: large enough that per-call overhead vanishes, small
# enough that intermediate activations stay in cache-friendly tens of MB.
CHUNK_ROWS = 65_536
# Up to this many samples evaluate runs in Keras' default batches of 32, so its numbers are bit for
# bit those of `model.evaluate(x, y)`; beyond, bigger batches keep it fast (sums then differ in the
# 7th significant digit at most).
EXACT_EVALUATE_SAMPLES = 65_536
EVALUATE_BIG_BATCH = 4096


class InferenceFailed(Exception):
    """Keras refused the inputs or the model; the message is shown to the user."""


_models: ByteLRU[Any] = ByteLRU(0)


def warm_up(cache_bytes: int) -> None:
    global _models
    _models = ByteLRU(cache_bytes)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras  # noqa: F401  (the import is the warm-up: seconds, paid once per process)


def to_blob(array: np.ndarray) -> Blob:
    array = np.ascontiguousarray(array)
    return array.tobytes(), array.dtype.str, tuple(int(d) for d in array.shape)


def from_blob(blob: Blob) -> np.ndarray:
    data, dtype, shape = blob
    return np.frombuffer(data, dtype=np.dtype(dtype)).reshape(shape)


def _model(stamp: Stamp) -> tuple[Any, str]:
    import keras

    def load() -> tuple[Any, int]:
        model = keras.models.load_model(stamp[0], safe_mode=True)
        weights = sum(int(np.prod(w.shape)) * np.dtype(w.dtype).itemsize for w in model.weights)
        return model, max(weights, stamp[2])

    model, hit = _models.get_or_load(stamp, load)
    return model, "hit" if hit else "miss"


def describe(stamp: Stamp) -> tuple[str, list[tuple[str, tuple[int | None, ...], str]]]:
    model, cache = _model(stamp)
    return cache, [(str(t.name), tuple(t.shape[1:]), str(t.dtype)) for t in model.inputs]


def _structured(model: Any, arrays: dict[str, np.ndarray]) -> Any:
    if len(arrays) == 1:
        return next(iter(arrays.values()))
    if isinstance(model.input, dict):
        return arrays
    return [arrays[str(t.name)] for t in model.inputs]


def _outputs(model: Any, result: Any) -> dict[str, np.ndarray]:
    if isinstance(result, dict):
        return {str(k): np.asarray(v) for k, v in result.items()}
    if isinstance(result, list | tuple):
        return {str(name): np.asarray(v) for name, v in zip(model.output_names, result, strict=True)}
    return {"": np.asarray(result)}


def _predict(model: Any, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    try:
        return _outputs(model, model.predict_on_batch(_structured(model, arrays)))
    except Exception as exc:  # Keras raises ValueError, TypeError or TensorFlow's own errors
        raise InferenceFailed(f"the model could not run on these inputs: {str(exc).splitlines()[0][:500]}") from None


def predict_blobs(stamp: Stamp, inputs: dict[str, Blob]) -> tuple[str, dict[str, Blob]]:
    """Small batches (JSON requests): one compiled predict call, a millisecond or two when warm."""
    model, cache = _model(stamp)
    outputs = _predict(model, {name: from_blob(blob) for name, blob in inputs.items()})
    return cache, {name: to_blob(value) for name, value in outputs.items()}


def predict_files(stamp: Stamp, inputs: dict[str, str], out_path: str, fmt: str) -> tuple[str, int, str]:
    """Big batches: memory-mapped `.npy` inputs in chunks of CHUNK_ROWS, written straight to `out_path`:
    CSV, or `.npy` for one output and `.npz` (one array per output name) for several. Returns the cache
    outcome, the number of rows and the format written."""
    model, cache = _model(stamp)
    arrays = {name: np.load(path, mmap_mode="r", allow_pickle=False) for name, path in inputs.items()}
    rows = len(next(iter(arrays.values())))
    out: dict[str, np.ndarray] = {}
    for start in range(0, rows, CHUNK_ROWS):
        chunk = {name: np.asarray(a[start : start + CHUNK_ROWS]) for name, a in arrays.items()}
        for name, values in _predict(model, chunk).items():
            if name not in out:
                out[name] = np.empty((rows, *values.shape[1:]), dtype=values.dtype)
            out[name][start : start + len(values)] = values
    if fmt == "csv":
        _write_csv(out, Path(out_path))
        return cache, rows, "csv"
    if len(out) == 1:
        np.save(out_path, next(iter(out.values())))
        return cache, rows, "npy"
    with open(out_path, "wb") as f:  # a file object: np.savez would add ".npz" to a name
        np.savez(f, **out)  # type: ignore[arg-type]
    return cache, rows, "npz"


def _write_csv(outputs: dict[str, np.ndarray], path: Path) -> None:
    """Columns output_0, output_1, ... for one output; <name>_0, <name>_1, ... for each of several."""
    import pyarrow as pa
    from pyarrow import csv as pa_csv

    columns = {}
    for name, values in outputs.items():
        flat = values.reshape(len(values), -1)
        prefix = "output" if len(outputs) == 1 else name
        columns.update({f"{prefix}_{i}": flat[:, i] for i in range(flat.shape[1])})
    pa_csv.write_csv(pa.table(columns), path)


def _load_all(paths: str | dict[str, str]) -> Any:
    if isinstance(paths, dict):
        return {name: np.asarray(np.load(path, mmap_mode="r", allow_pickle=False)) for name, path in paths.items()}
    return np.asarray(np.load(paths, mmap_mode="r", allow_pickle=False))


def evaluate_files(stamp: Stamp, x_path: str | dict[str, str], y_path: str | dict[str, str]) -> tuple[str, dict[str, float], int]:
    """`x_path` / `y_path` are one `.npy`, or `.npy` files by input / output name."""
    model, cache = _model(stamp)
    if not model.compiled:
        raise InferenceFailed("the saved model was not compiled with a loss, so it cannot be evaluated")
    x, y = _load_all(x_path), _load_all(y_path)
    if isinstance(x, dict):
        x = _structured(model, x)
    if isinstance(y, dict) and len(y) == 1:
        y = next(iter(y.values()))
    samples = len(next(iter(x.values())) if isinstance(x, dict) else x[0] if isinstance(x, list) else x)
    batch_size = 32 if samples <= EXACT_EVALUATE_SAMPLES else EVALUATE_BIG_BATCH
    try:
        logs = model.evaluate(x, y, batch_size=batch_size, verbose=0, return_dict=True)
    except Exception as exc:
        raise InferenceFailed(f"the model could not be evaluated on this dataset: {str(exc).splitlines()[0][:500]}") from None
    return cache, {str(k): float(v) for k, v in logs.items()}, samples
