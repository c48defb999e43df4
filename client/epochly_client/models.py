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

    @property
    def sha256(self) -> str | None:
        """The hash of the file as uploaded: the same arrays in the same file find this dataset again."""
        return self.raw.get("sha256")

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

    @property
    def queue(self) -> str:
        """The queue the job waits in; only workers consuming it take it."""
        return self.raw.get("queue", "default")

    @property
    def waiting_reason(self) -> str | None:
        """While queued: why no worker will take it yet ("no worker is consuming queue `gpu`")."""
        return self.raw.get("waiting_reason")

    @property
    def worker_devices(self) -> list[dict[str, str]] | None:
        """The devices ({"kind": "CPU" | "GPU", "name": ...}) the job's worker trains it on."""
        return self.raw.get("worker_devices")

    @property
    def sweep_id(self) -> str | None:
        """The sweep this job is a trial of, if any."""
        return self.raw.get("sweep_id")

    @property
    def trial(self) -> int | None:
        """Its 1-based trial number in its sweep."""
        return self.raw.get("trial")

    @property
    def params(self) -> dict[str, Any] | None:
        """A trial's sampled values, by spec path."""
        return self.raw.get("params")

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
class Trial:
    """One trial of a sweep: an ordinary job, what was sampled for it and the best objective value it reached."""

    job_id: str
    trial: int
    status: str
    params: dict[str, Any]
    objective: float | None
    epochs_completed: int
    stop_reason: str | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    def after_epoch(self, epoch: int, value: float | None, direction: str) -> "Trial":
        """This trial once `epoch` reported `value`: its objective stays the best so far, as the server keeps it."""
        best = self.objective
        if value is not None and (best is None or (value > best if direction == "maximize" else value < best)):
            best = value
        return Trial.from_json({**self.raw, "epochs_completed": max(epoch, self.epochs_completed), "objective": best})

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Trial":
        return cls(
            data["job_id"],
            data["trial"],
            data["status"],
            data["params"],
            data.get("objective"),
            data["epochs_completed"],
            data.get("stop_reason"),
            data,
        )


def ranked(trials: list[Trial], direction: str) -> list[Trial]:
    """The server's leaderboard order: best objective first, trials without one yet last, by trial number."""
    sign = -1.0 if direction == "maximize" else 1.0
    return sorted(trials, key=lambda t: (t.objective is None, sign * (t.objective or 0.0), t.trial))


@dataclass(frozen=True)
class Sweep:
    """A sweep; `leaderboard` (every trial, best first) is empty in lists, which carry only `best`."""

    id: str
    name: str | None
    status: str
    metric: str
    direction: str
    trials: int
    trials_created: int
    counts: dict[str, int]
    best: Trial | None
    leaderboard: list[Trial]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    @property
    def trials_finished(self) -> int:
        """Trials that have ended, however (pruned ones count as succeeded)."""
        return sum(self.counts.get(status, 0) for status in TERMINAL)

    @property
    def queue(self) -> str:
        """The queue every trial waits in."""
        return self.raw.get("queue", "default")

    @property
    def epochs_per_trial(self) -> int | None:
        return self.raw.get("spec", {}).get("fit", {}).get("epochs")

    @property
    def search(self) -> dict[str, dict[str, Any]]:
        """Spec path → distribution (empty in lists)."""
        return self.raw.get("search", {})

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Sweep":
        return cls(
            data["id"],
            data.get("name"),
            data["status"],
            data["objective"]["metric"],
            data["objective"]["direction"],
            data["trials"],
            data["trials_created"],
            data["counts"],
            Trial.from_json(data["best"]) if data.get("best") else None,
            [Trial.from_json(t) for t in data.get("leaderboard", [])],
            data,
        )


@dataclass(frozen=True)
class Importance:
    """How much of the objective's spread each searched path explains, largest first (empty below 2 finished trials)."""

    method: str
    trials_used: int
    importances: dict[str, float]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Importance":
        return cls(data["method"], data["trials_used"], data["importances"], data)


@dataclass(frozen=True)
class Event:
    """One server-sent event: a job's `status`, `epoch`, `progress` or `end`; a sweep's `sweep`, `trial_queued`,
    `trial_started`, `epoch`, `pruned`, `finished`, `best` or `end`."""

    type: str
    id: str | None
    data: dict[str, Any]

    @property
    def epoch(self) -> Epoch | None:
        """A job's epoch (a sweep's `epoch` events carry the trial and objective instead)."""
        return Epoch.from_json(self.data) if self.type == "epoch" and "sweep_id" not in self.data else None
