"""What `fit` is given as data, as the service stores it: named arrays in an .npz whose bytes are the
same for the same arrays, so their sha256 (what the service hashes) finds an earlier upload."""

import hashlib
import io
import sys
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

# The service's default MAX_DATASET_BYTES: a tf.data.Dataset larger than this is refused before anything
# is sent (a service configured lower answers 413 to the upload).
MAX_DATASET_BYTES = 4 * 1024**3
# Fixed member timestamps: np.savez stamps the current time, which would change the hash on every call.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Arrays:
    """One dataset's arrays by .npz member name (x, y, or x_<input>, y_<output>), in a fixed order."""

    members: dict[str, np.ndarray]

    @property
    def n_samples(self) -> int:
        return len(next(iter(self.members.values())))

    def npz(self) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
            for name, array in self.members.items():
                member = io.BytesIO()
                np.lib.format.write_array(member, array, allow_pickle=False)
                archive.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_EPOCH), member.getvalue())
        return buffer.getvalue()


def dataset_arrays(model: Any, x: Any, y: Any, argument: str = "x") -> Arrays:
    """x and y as the service's named arrays: a one-input (one-output) model's side is one array, a
    several-input one is an array per input name (a dict by name, or a list in the model's order)."""
    if y is None:
        x, y = _split_pairs(x, argument)
    members = {**_side("x", x, input_names(model)), **_side("y", y, output_names(model))}
    lengths = {name: len(array) for name, array in members.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"{argument}: the arrays have different numbers of samples: {lengths}")
    return Arrays(members)


def feature_arrays(model: Any, x: Any) -> dict[str, np.ndarray]:
    """Features by input name, as /predict takes them ("" for a one-input model's bare rows)."""
    side = _side("x", x, input_names(model))
    return {name[2:]: array for name, array in side.items()}


def digest(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def input_names(model: Any) -> list[str]:
    """The names a dict of features is matched against; none yet for a Sequential that Keras has not
    built (its input shape comes from the data, on the service as in a local fit)."""
    try:
        return [str(tensor.name) for tensor in model.inputs]
    except (AttributeError, ValueError):
        return []


def output_names(model: Any) -> list[str]:
    try:
        return [str(name) for name in model.output_names]
    except (AttributeError, ValueError):
        return []


def _side(prefix: str, data: Any, names: list[str]) -> dict[str, np.ndarray]:
    if isinstance(data, Mapping):
        if len(names) <= 1 and len(data) == 1:
            return {prefix: _array(next(iter(data.values())))}
        names = names or list(data)  # a job id without its model: the names are the caller's
        unknown = sorted(set(data) - set(names))
        if unknown:
            role = "input" if prefix == "x" else "output"
            raise ValueError(f"{prefix} has {', '.join(map(repr, unknown))}; the model's {role}s are {', '.join(names)}")
        return {f"{prefix}_{name}": _array(data[name]) for name in names if name in data}
    if len(names) > 1 and isinstance(data, list | tuple) and len(data) == len(names):
        return {f"{prefix}_{name}": _array(part) for name, part in zip(names, data, strict=True)}
    return {prefix: _array(data)}


def _array(data: Any) -> np.ndarray:
    """Floats as Keras feeds them (float32: half the bytes to send and hash); pandas via `to_numpy`."""
    array = np.asarray(data.to_numpy() if hasattr(data, "to_numpy") else data)
    if array.dtype.kind == "f" and array.dtype != np.float32:
        return array.astype(np.float32)
    if array.dtype.kind not in "biuf":
        raise ValueError(f"only numeric arrays can be trained on; got dtype {array.dtype}")
    return array


def _split_pairs(data: Any, argument: str) -> tuple[Any, Any]:
    """`x` given alone: a finite tf.data.Dataset of (x, y) batches, materialised; anything else is refused."""
    tf = sys.modules.get("tensorflow")
    if tf is not None and isinstance(data, tf.data.Dataset):
        return _materialise(tf, data, argument)
    if hasattr(data, "__next__") or hasattr(data, "send"):
        raise ValueError(
            f"{argument} is a generator: Epochly trains on data it stores, so it needs every sample up front; "
            "pass arrays, or a finite tf.data.Dataset"
        )
    raise ValueError(f"{argument} needs its labels: pass y (or (x, y) batches as a tf.data.Dataset)")


def _materialise(tf: Any, dataset: Any, argument: str) -> tuple[Any, Any]:
    if int(dataset.cardinality()) == int(tf.data.INFINITE_CARDINALITY):
        raise ValueError(f"{argument} is an infinite tf.data.Dataset (e.g. .repeat()): Epochly needs a finite one to store")
    xs: list[Any] = []
    ys: list[Any] = []
    size = 0
    for element in dataset.as_numpy_iterator():
        if not isinstance(element, tuple) or len(element) != 2:
            raise ValueError(
                f"{argument}: each element of the tf.data.Dataset must be an (x, y) batch; sample weights are not taken"
            )
        batch_x, batch_y = element
        size += sum(np.asarray(a).nbytes for a in _leaves(batch_x) + _leaves(batch_y))
        if size > MAX_DATASET_BYTES:
            raise ValueError(
                f"{argument}: the tf.data.Dataset holds more than {MAX_DATASET_BYTES:,} bytes (MAX_DATASET_BYTES); "
                "it cannot be uploaded as one dataset"
            )
        xs.append(batch_x)
        ys.append(batch_y)
    if not xs:
        raise ValueError(f"{argument}: the tf.data.Dataset is empty")
    return _concatenate(xs), _concatenate(ys)


def _leaves(batch: Any) -> list[Any]:
    return list(batch.values()) if isinstance(batch, Mapping) else [batch]


def _concatenate(batches: list[Any]) -> Any:
    if isinstance(batches[0], Mapping):
        return {name: np.concatenate([batch[name] for batch in batches]) for name in batches[0]}
    return np.concatenate(batches)
