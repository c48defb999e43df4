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


class ModelNotReady(NotFound):
    title = "Model not available"


class Conflict(DomainError):
    status = 409
    title = "Conflict"


class DatasetInUse(Conflict):
    title = "Dataset in use"


class InvalidSpec(DomainError):
    status = 422
    title = "Invalid job spec"


class InvalidDataset(DomainError):
    status = 422
    title = "Invalid dataset"


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
