"""Turn a training exception into the `{type, message}` a user reads on a failed job."""
import tensorflow as tf

from app.training.builder import SpecError, clean_error
from app.training.trainer import NonFiniteLoss

_NAMED = (
    (NonFiniteLoss, "NonFiniteLoss"),
    (MemoryError, "OutOfMemory"),
    (tf.errors.ResourceExhaustedError, "OutOfMemory"),
    (tf.errors.InvalidArgumentError, "InvalidArgument"),
    (SpecError, "InvalidSpec"),
)


def describe_failure(exc: BaseException) -> dict[str, str]:
    for cls, name in _NAMED:
        if isinstance(exc, cls):
            return {"type": name, "message": clean_error(exc)}
    return {"type": type(exc).__name__, "message": clean_error(exc)}
