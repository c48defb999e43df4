"""The job lifecycle: every status a job can have, the moves allowed between them, and the one place
that makes them. Routes, the worker and the scheduler all call these functions; nothing else writes
`Job.status`.

Each move is one guarded `UPDATE … WHERE status IN (states that may reach the target)`, plus the
caller's own guards (the worker that holds the job, a heartbeat still stale): whoever loses a race
gets None and changes nothing. The move writes the history row and keeps the attempt list; the
status event is published, and a queued job's doorbell rung, only after the caller's commit."""

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from app import persisted_metrics
from app.db import publish_after_commit, ring_after_commit
from app.events.messages import changed_message, status_message
from app.models import Job, JobEvent, utcnow


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class StopReason(StrEnum):
    """Why training ended, recorded on the finished job. Early stopping ends `succeeded` with fewer
    epochs than asked for; a NaN or infinite loss ends `failed` (NonFiniteLoss): its weights are
    unusable, with or without TerminateOnNaN in fit.callbacks."""

    COMPLETED = "completed"
    EARLY_STOPPING = "early_stopping"
    NAN_LOSS = "nan_loss"
    CANCELLED = "cancelled"
    # A sweep's pruner ended the trial: its objective fell behind the other trials'. Ends `succeeded`.
    PRUNED = "pruned"


# QUEUED again from RUNNING is a requeue: a lost worker's job, or one handed back at shutdown.
ALLOWED: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.CANCELLED}),
    JobStatus.RUNNING: frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.QUEUED}),
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
}
TERMINAL = frozenset(status for status, targets in ALLOWED.items() if not targets)
# A job in one of these still needs a worker (or has one): it holds its dataset and counts toward limits.
ACTIVE = frozenset(ALLOWED) - TERMINAL

# How many of the oldest queued jobs one doorbell tries before it gives up (the others were claimed meanwhile).
CLAIM_CANDIDATES = 8
# Attempt outcomes that are not a final status.
WORKER_LOST = "worker lost"
HANDED_BACK = "handed back"


class IllegalMove(ValueError):
    """A move the table does not allow: a bug in the caller, never the user's doing."""


def sources(to: JobStatus) -> frozenset[JobStatus]:
    """The statuses from which a job may move to `to`."""
    return frozenset(status for status, targets in ALLOWED.items() if to in targets)


def move(
    session: Session,
    job_id: str,
    to: JobStatus,
    *,
    message: str,
    from_: Iterable[JobStatus] | None = None,
    guards: Iterable[ColumnElement[bool]] = (),
    values: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> JobEvent | None:
    """Move one job to `to` if it is still in a status that may go there; None if it is not (a lost race)."""
    allowed_from = sources(to)
    origins = allowed_from if from_ is None else frozenset(from_)
    if not origins or not origins <= allowed_from:
        raise IllegalMove(f"no job may move from {sorted(origins)} to {to}")
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.in_(origins), *guards)
        .values(status=to, **(values or {}))
        .execution_options(synchronize_session=False)
    )
    assert isinstance(result, CursorResult)
    if result.rowcount != 1:
        return None
    return _record(session, job_id, to, message, at or utcnow())


def _record(session: Session, job_id: str, status: JobStatus, message: str, at: datetime) -> JobEvent:
    event = JobEvent(job_id=job_id, status=status, message=message, at=at)
    session.add(event)
    session.flush()  # the event's id is its sequence number in streams
    publish_after_commit(session, status_message(event))
    if status is JobStatus.QUEUED:
        # A requeued job goes back to its own queue, so only the workers that may take it hear of it.
        queue = session.scalar(select(Job.queue).where(Job.id == job_id))
        assert queue is not None  # the row was written or updated in this very transaction
        ring_after_commit(session, job_id, queue)
    return event


def submit(session: Session, job: Job) -> Job:
    """A new job, queued; the broker hears of it once the caller commits."""
    job.status = JobStatus.QUEUED
    job.attempts = []
    session.add(job)
    session.flush()
    _record(session, job.id, JobStatus.QUEUED, "submitted; waiting for a worker", job.created_at)
    return job


def refuse(session: Session, job: Job, error: dict[str, Any]) -> Job:
    """A sweep's trial whose sampled spec failed its check, written straight as failed: the trial
    still counts toward the sweep, and says why it never ran."""
    job.status = JobStatus.FAILED
    job.attempts = []
    job.error = error
    job.finished_at = job.created_at = utcnow()
    session.add(job)
    session.flush()
    _record(session, job.id, JobStatus.FAILED, f"refused: {error['message']}", job.finished_at)
    return job


def claim(
    session: Session,
    job_id: str,
    worker: str,
    *,
    queues: Collection[str] | None = None,
    devices: Sequence[dict[str, str]] = (),
) -> JobEvent | None:
    """queued → running for `worker`, opening a new attempt that records the `devices` it trains on;
    None if the job is not queued any more, or is not in one of `queues` (None: any queue)."""
    row = session.execute(select(Job.attempts, Job.started_at).where(Job.id == job_id)).one_or_none()
    if row is None:
        return None
    attempts, started_at = row
    now = utcnow()
    attempt = len(attempts) + 1
    opened = {
        "attempt": attempt,
        "worker": worker,
        "devices": list(devices),
        "started_at": now.isoformat(),
        "ended_at": None,
        "outcome": None,
    }
    return move(
        session,
        job_id,
        JobStatus.RUNNING,
        message=f"started on {worker}" if attempt == 1 else f"attempt {attempt} started on {worker}",
        guards=[] if queues is None else [Job.queue.in_(queues)],
        # The attempt list read above is still current if this wins: only a claim changes it, and only from QUEUED.
        values={"started_at": started_at or now, "worker": worker, "heartbeat_at": now, "attempts": [*attempts, opened]},
        at=now,
    )


def claim_next(
    session: Session, job_id: str, worker: str, *, queues: Collection[str], devices: Sequence[dict[str, str]] = ()
) -> tuple[str, JobEvent] | None:
    """Claim `job_id`, or else the oldest queued job of `queues`: a message is a doorbell, and any ring
    from a queue may take any job waiting in it, so the broker needs only as many messages per queue
    as there are queued jobs there, whichever they name. The worker passes the queue the message came
    from, so taking a job never leaves another queue a message short."""
    if (event := claim(session, job_id, worker, queues=queues, devices=devices)) is not None:
        return job_id, event
    for candidate in oldest_queued(session, CLAIM_CANDIDATES, queues=queues):
        if (event := claim(session, candidate, worker, queues=queues, devices=devices)) is not None:
            return candidate, event
    return None


def oldest_queued(session: Session, limit: int, *, queues: Collection[str]) -> list[str]:
    """The ids of the jobs in `queues` that have waited longest: first in line for a worker."""
    stmt = (
        select(Job.id).where(Job.status == JobStatus.QUEUED, Job.queue.in_(queues)).order_by(Job.created_at, Job.id).limit(limit)
    )
    return list(session.scalars(stmt))


def beat(session: Session, job_id: str, worker: str) -> bool:
    """Record that `worker` still runs the job; False if the job is no longer its to run."""
    result = session.execute(
        update(Job).where(Job.id == job_id, Job.status == JobStatus.RUNNING, Job.worker == worker).values(heartbeat_at=utcnow())
    )
    assert isinstance(result, CursorResult)
    return result.rowcount == 1


def requeue(
    session: Session,
    job_id: str,
    *,
    worker: str,
    outcome: str,
    message: str,
    heartbeat_before: datetime | None = None,
) -> JobEvent | None:
    """running → queued for another attempt, closing `worker`'s attempt with `outcome`."""
    return move(
        session,
        job_id,
        JobStatus.QUEUED,
        message=message,
        guards=_held_by(worker, heartbeat_before),
        values={"worker": None, "cancel_requested_at": None, "attempts": _closed_attempts(session, job_id, outcome)},
    )


def finish(
    session: Session,
    job_id: str,
    to: JobStatus,
    *,
    worker: str,
    message: str,
    outcome: str | None = None,
    error: dict[str, Any] | None = None,
    model_path: str | None = None,
    heartbeat_before: datetime | None = None,
    stop_reason: StopReason | None = None,
    best_epoch: int | None = None,
    best: dict[str, float] | None = None,
) -> JobEvent | None:
    """running → succeeded, failed or cancelled, if `worker` still holds the job; `stop_reason` says
    why training ended (None for a failure other than a NaN loss), `best_epoch` and `best` which
    finished epoch was best and its logs."""
    if to not in TERMINAL:
        raise IllegalMove(f"{to} is not a final status")
    now = utcnow()
    event = move(
        session,
        job_id,
        to,
        message=message,
        from_=[JobStatus.RUNNING],
        guards=_held_by(worker, heartbeat_before),
        values={
            "finished_at": now,
            "error": error,
            "model_path": model_path,
            "stop_reason": stop_reason,
            "best_epoch": best_epoch,
            "best": best,
            "attempts": _closed_attempts(session, job_id, outcome or to.value),
        },
        at=now,
    )
    if event is not None:
        persisted_metrics.observe_finished_job(session, job_id, to, now)
    return event


def cancel(session: Session, job_id: str) -> JobEvent | None:
    """A queued job is cancelled at once (its event returned); a running one is flagged, and its worker
    stops at the next step boundary and finishes it as cancelled (None returned)."""
    now = utcnow()
    event = move(
        session,
        job_id,
        JobStatus.CANCELLED,
        message="cancelled before it started",
        from_=[JobStatus.QUEUED],
        values={"finished_at": now, "stop_reason": StopReason.CANCELLED},
        at=now,
    )
    if event is None:
        result = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == JobStatus.RUNNING, Job.cancel_requested_at.is_(None))
            .values(cancel_requested_at=now)
        )
        assert isinstance(result, CursorResult)
        if result.rowcount == 1:  # no status change yet, but what a reader of the job sees has changed
            publish_after_commit(session, changed_message(job_id))
    return event


def _held_by(worker: str, heartbeat_before: datetime | None) -> list[ColumnElement[bool]]:
    guards = [Job.worker == worker]
    if heartbeat_before is not None:
        # A worker that beat again since the caller looked keeps its job.
        guards.append(Job.heartbeat_at < heartbeat_before)
    return guards


def _closed_attempts(session: Session, job_id: str, outcome: str) -> list[dict[str, Any]]:
    attempts: list[dict[str, Any]] = session.scalar(select(Job.attempts).where(Job.id == job_id)) or []
    if not attempts:
        return attempts
    return [*attempts[:-1], {**attempts[-1], "ended_at": utcnow().isoformat(), "outcome": outcome}]
