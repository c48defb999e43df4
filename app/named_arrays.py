"""Samples as one array or as arrays by name (a model's named inputs or outputs): the few operations
the trainer, the spec check and the worker need, applied to every array alike. No Keras here."""

import re
from collections.abc import Callable
from typing import Any

import numpy as np

# Array names become file names (x_<name>.npy): identifiers only, never paths.
NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")

Arrays = np.ndarray | dict[str, np.ndarray]


def valid_name(name: str) -> bool:
    return NAME_PATTERN.fullmatch(name) is not None


def apply(data: Any, fn: Callable[[np.ndarray], np.ndarray]) -> Any:
    """`fn` on the array, or on each named array (same keys, same order)."""
    if isinstance(data, dict):
        return {name: fn(array) for name, array in data.items()}
    return fn(data)


def rows(data: Arrays) -> int:
    if isinstance(data, dict):
        return len(next(iter(data.values())))
    return len(data)


def nbytes(data: Arrays) -> int:
    if isinstance(data, dict):
        return sum(int(a.nbytes) for a in data.values())
    return int(data.nbytes)


def sample_shapes(data: Arrays) -> tuple[int, ...] | dict[str, tuple[int, ...]]:
    """One sample's shape, or each named array's."""
    if isinstance(data, dict):
        return {name: tuple(int(d) for d in a.shape[1:]) for name, a in data.items()}
    return tuple(int(d) for d in data.shape[1:])


def for_keras(data: Any) -> Any:
    """A single named array goes to Keras bare: a one-input (one-output) model takes it that way
    whatever the name, and the names were checked against the model's when the job was submitted."""
    if isinstance(data, dict) and len(data) == 1:
        return next(iter(data.values()))
    return data
