"""Domain errors raised by services; app/api/problems.py maps each to one HTTP problem response."""

from dataclasses import dataclass, field
from typing import ClassVar


@dataclass
class FieldError:
    path: str
    message: str


@dataclass
class DomainError(Exception):
    detail: str
    errors: list[FieldError] = field(default_factory=list)

    status = 400
    title = "Bad request"

    def __str__(self) -> str:
        return self.detail


class NotFound(DomainError):
    status = 404
    title = "Not found"


class DatasetNotFound(NotFound):
    title = "Dataset not found"


class JobNotFound(NotFound):
    title = "Job not found"


class SweepNotFound(NotFound):
    title = "Sweep not found"


class ModelNotReady(NotFound):
    title = "Model not available"


class Conflict(DomainError):
    status = 409
    title = "Conflict"


class NotRerunnable(Conflict):
    title = "Job cannot be rerun"


class DatasetInUse(Conflict):
    title = "Dataset in use"


class ModelNotTrained(Conflict):
    title = "Model not trained"


class InvalidSpec(DomainError):
    status = 422
    title = "Invalid job spec"


class InvalidDataset(DomainError):
    status = 422
    title = "Invalid dataset"


class InvalidInput(DomainError):
    status = 422
    title = "Invalid model input"


class PayloadTooLarge(DomainError):
    status = 413
    title = "Payload too large"


class ServiceUnavailable(DomainError):
    status = 503
    title = "Service unavailable"


class InvalidCursor(DomainError):
    status = 422
    title = "Invalid cursor"


class Unauthorized(DomainError):
    status = 401
    title = "Unauthorized"
    headers: ClassVar[dict[str, str]] = {"WWW-Authenticate": 'Bearer realm="epochly"'}


class QuotaExceeded(DomainError):
    status = 429
    title = "Too many active jobs"


class Forbidden(DomainError):
    status = 403
    title = "Forbidden"


class KeyNotFound(NotFound):
    title = "API key not found"


class RateLimited(DomainError):
    """Over the key's token bucket (RATE_LIMIT_PER_MIN); Retry-After says when a token is back."""

    status = 429
    title = "Too many requests"

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(detail)
        self.headers = {"Retry-After": str(retry_after_s)}
