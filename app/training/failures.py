"""Turn a training exception into the `{type, message, epoch, traceback}` a user reads on a failed job."""

import sys
import traceback
from pathlib import Path

import tensorflow as tf

from app.training.builder import SpecError, clean_error
from app.training.trainer import NonFiniteLoss

TRACEBACK_FRAMES = 8
_NAMED = (
    (NonFiniteLoss, "NonFiniteLoss"),
    (MemoryError, "OutOfMemory"),
    (tf.errors.ResourceExhaustedError, "OutOfMemory"),
    (tf.errors.InvalidArgumentError, "InvalidArgument"),
    (SpecError, "InvalidSpec"),
)


def describe_failure(exc: BaseException, epoch: int | None) -> dict[str, object]:
    name = next((label for cls, label in _NAMED if isinstance(exc, cls)), type(exc).__name__)
    return {"type": name, "message": clean_error(exc), "epoch": epoch or None, "traceback": safe_traceback(exc)}


def safe_traceback(exc: BaseException) -> list[str]:
    """The last frames as `module.function line N`: where it broke, without the worker's paths."""
    frames = traceback.extract_tb(exc.__traceback__)[-TRACEBACK_FRAMES:]
    lines = ["Traceback (most recent call last):"]
    lines += [f"  at {_module_name(frame.filename)}.{frame.name} line {frame.lineno}" for frame in frames]
    return lines


def _module_name(filename: str) -> str:
    path = Path(filename)
    roots = sorted((Path(p) for p in sys.path if p), key=lambda p: len(str(p)), reverse=True)
    for root in roots:
        try:
            relative = path.relative_to(root)
        except ValueError:
            continue
        return ".".join(relative.with_suffix("").parts)
    return path.stem
