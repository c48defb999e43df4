"""What a saved model takes as input, read from the `.keras` file's config.json without Keras, so the
API can check a request's shape before anything reaches the helper process."""

import json
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.inference.cache import ByteLRU


@dataclass(frozen=True)
class ModelInput:
    name: str
    shape: tuple[int | None, ...]  # one sample's shape, without the batch dimension
    dtype: str


@dataclass(frozen=True)
class Signature:
    inputs: tuple[ModelInput, ...]

    def input_named(self, name: str) -> ModelInput | None:
        return next((i for i in self.inputs if i.name == name), None)


class SignatureUnreadable(Exception):
    """The config does not say (an exotic model); the helper will describe the loaded model instead."""


def model_stamp(path: Path) -> tuple[str, int, int]:
    """Identifies one version of a model file: a retrained or replaced file is a different model."""
    stat = path.stat()
    return str(path), stat.st_mtime_ns, stat.st_size


def read_signature(path: Path) -> Signature:
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
        return _signature(config)
    except (KeyError, TypeError, ValueError, IndexError, zipfile.BadZipFile) as exc:
        raise SignatureUnreadable(str(exc)) from None


def _signature(config: dict[str, Any]) -> Signature:
    body = config["config"]
    input_layers = {
        layer["config"]["name"]: layer["config"] for layer in body["layers"] if layer.get("class_name") == "InputLayer"
    }
    # A built Sequential starts with its one InputLayer; a Functional model lists its inputs.
    names = [next(iter(input_layers))] if config["class_name"] == "Sequential" else _input_names(body["input_layers"])
    inputs = []
    for name in names:
        layer = input_layers[name]
        batch_shape = layer["batch_shape"]
        dtype = layer.get("dtype", "float32")
        if isinstance(dtype, dict):  # a DTypePolicy
            dtype = dtype["config"]["name"]
        inputs.append(ModelInput(name=name, shape=tuple(batch_shape[1:]), dtype=str(dtype)))
    if not inputs:
        raise ValueError("the model config names no input")
    return Signature(tuple(inputs))


def _input_names(spec: Any) -> list[str]:
    # Keras writes ["name", 0, 0] for one input, a list of those for several, or a dict by input name.
    if isinstance(spec, dict):
        return [_input_names(value)[0] for value in spec.values()]
    if spec and isinstance(spec[0], str):
        return [spec[0]]
    return [item[0] for item in spec]


class SignatureCache:
    """Signatures by model version; small, so a count bound is enough (a byte-sized entry each)."""

    def __init__(self, max_entries: int = 1024) -> None:
        self._lock = threading.Lock()
        self._cache: ByteLRU[Signature] = ByteLRU(max_entries)

    def get(self, stamp: tuple[str, int, int]) -> Signature | None:
        with self._lock:
            return self._cache.get(stamp)

    def put(self, stamp: tuple[str, int, int], signature: Signature) -> None:
        with self._lock:
            self._cache.put(stamp, signature, 1)
