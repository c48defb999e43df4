"""The event payloads, built once from database rows so a stream and a poller see the same fields."""

from datetime import datetime
from typing import Any

from app.models import EpochMetric, JobEvent


def iso(moment: datetime) -> str:
    """The same text pydantic writes for a UTC datetime, so streamed and polled rows compare equal."""
    return moment.isoformat().replace("+00:00", "Z")


def status_message(event: JobEvent) -> dict[str, Any]:
    return {
        "type": "status",
        "job_id": event.job_id,
        "seq": event.id,
        "status": event.status,
        "message": event.message,
        "at": iso(event.at),
    }


def epoch_message(row: EpochMetric) -> dict[str, Any]:
    return {
        "type": "epoch",
        "job_id": row.job_id,
        "epoch": row.epoch,
        "logs": row.logs,
        "duration_s": row.duration_s,
        "finished_at": iso(row.finished_at),
    }


def progress_message(job_id: str, epoch: int, batch: int, batches: int | None) -> dict[str, Any]:
    return {"type": "progress", "job_id": job_id, "epoch": epoch, "batch": batch, "batches": batches}


def changed_message(job_id: str) -> dict[str, Any]:
    """A change of a job that is neither a status nor an epoch (a cancel request): readers re-read it."""
    return {"type": "changed", "job_id": job_id}
