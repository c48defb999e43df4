"""Typed results: thin dataclasses over the API's JSON, keeping the raw dict for anything newer."""

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class JobStatus(StrEnum):
    """The wire values of a job's status, named as the server names them (app.lifecycle.JobStatus)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})


@dataclass(frozen=True)
class Dataset:
    id: str
    name: str
    format: str
    n_samples: int
    x_shape: list[int]
    y_shape: list[int]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Dataset":
        return cls(data["id"], data["name"], data["format"], data["n_samples"], data["x_shape"], data["y_shape"], data)


@dataclass(frozen=True)
class Epoch:
    epoch: int
    logs: dict[str, float]
    duration_s: float

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Epoch":
        return cls(data["epoch"], data["logs"], data["duration_s"])

    def keras_line(self, epochs_total: int) -> str:
        """Keras' verbose=2 line: `Epoch 3/20 - 0s - loss: 0.5748 - accuracy: 0.7010`."""
        # loss first, the learning rate last; small values in Keras' scientific notation (1.0000e-04)
        ordered = sorted(self.logs.items(), key=lambda kv: (kv[0] == "learning_rate", kv[0] != "loss", kv[0].startswith("val_")))
        values = " - ".join(f"{key}: {value:.4f}" if abs(value) > 1e-3 else f"{key}: {value:.4e}" for key, value in ordered)
        return f"Epoch {self.epoch}/{epochs_total} - {round(self.duration_s)}s - {values}"


@dataclass(frozen=True)
class Job:
    id: str
    status: str
    epochs_total: int
    epochs_completed: int
    latest: dict[str, float] | None
    error: dict[str, Any] | None
    batch: int | None
    batches_per_epoch: int | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    @property
    def stop_reason(self) -> str | None:
        """completed, early_stopping, nan_loss or cancelled once training has ended."""
        return self.raw.get("stop_reason")

    @property
    def best_epoch(self) -> int | None:
        return self.raw.get("best_epoch")

    def stop_line(self) -> str | None:
        """Why training ended, in one line, for a job that stopped before its last epoch."""
        if self.stop_reason == "early_stopping":
            best = f"; best epoch {self.best_epoch}" if self.best_epoch else ""
            return f"stopped early by EarlyStopping after epoch {self.epochs_completed} of {self.epochs_total}{best}"
        if self.stop_reason == "nan_loss":
            return f"stopped: the loss became NaN or infinite in epoch {self.epochs_completed + 1}"
        return None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Job":
        return cls(
            data["id"],
            data["status"],
            data["epochs_total"],
            data["epochs_completed"],
            data.get("latest"),
            data.get("error"),
            data.get("batch"),
            data.get("batches_per_epoch"),
            data,
        )


@dataclass(frozen=True)
class Event:
    """One server-sent event: `status`, `epoch`, `progress` or `end`."""

    type: str
    id: str | None
    data: dict[str, Any]

    @property
    def epoch(self) -> Epoch | None:
        return Epoch.from_json(self.data) if self.type == "epoch" else None
