"""Job, status-history and epoch-metric queries."""
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.models import EpochMetric, Job, JobEvent, utcnow
from app.repositories.pagination import Page, newest_first


def add(session: Session, job: Job, message: str) -> Job:
    session.add(job)
    job.history.append(JobEvent(status=job.status, message=message, at=job.created_at))
    session.flush()
    return job


def get(session: Session, job_id: str) -> Job | None:
    return session.get(Job, job_id)


def get_owned(session: Session, owner_id: str, job_id: str) -> Job | None:
    """Another owner's job does not exist, as far as the caller can tell."""
    return session.scalar(select(Job).where(Job.id == job_id, Job.owner_id == owner_id))


def owned_status(session: Session, owner_id: str, job_id: str) -> str | None:
    return session.scalar(select(Job.status).where(Job.id == job_id, Job.owner_id == owner_id))


def page(session: Session, owner_id: str, *, status: str | None, cursor: str | None, limit: int) -> Page[Job]:
    stmt = select(Job).where(Job.owner_id == owner_id)
    if status:
        stmt = stmt.where(Job.status == status)
    return newest_first(session, stmt, Job, cursor, limit)


def add_event(session: Session, job_id: str, status: str, message: str, at: datetime | None = None) -> JobEvent:
    event = JobEvent(job_id=job_id, status=status, message=message, at=at or utcnow())
    session.add(event)
    session.flush()
    return event


def claim(session: Session, job_id: str, worker: str) -> JobEvent | None:
    """queued → running, atomically: a redelivered or duplicate message finds nothing to claim."""
    job = session.get(Job, job_id)
    if job is None or job.status != "queued":
        return None
    now = utcnow()
    attempt = len(job.attempts) + 1
    attempts = [*job.attempts, {"attempt": attempt, "worker": worker, "started_at": now.isoformat(), "ended_at": None, "outcome": None}]
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == "queued")
        .values(status="running", started_at=job.started_at or now, worker=worker, heartbeat_at=now, attempts=attempts)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return None
    message = f"started on {worker}" if attempt == 1 else f"attempt {attempt} started on {worker}"
    return add_event(session, job_id, "running", message, now)


def beat(session: Session, job_id: str, worker: str) -> bool:
    """Record that `worker` still runs the job; False if the job is no longer its to run."""
    result = session.execute(
        update(Job).where(Job.id == job_id, Job.status == "running", Job.worker == worker).values(heartbeat_at=utcnow())
    )
    return result.rowcount == 1


def stale_running(session: Session, cutoff: datetime) -> list[Job]:
    stmt = select(Job).where(Job.status == "running", Job.heartbeat_at < cutoff)
    return list(session.scalars(stmt))


def requeue(session: Session, job: Job, *, from_status: str, outcome: str, message: str, heartbeat_before: datetime | None = None) -> JobEvent | None:
    """running → queued for another attempt, closing the current attempt with `outcome`."""
    conditions = [Job.id == job.id, Job.status == from_status, Job.worker == job.worker]
    if heartbeat_before is not None:
        conditions.append(Job.heartbeat_at < heartbeat_before)
    result = session.execute(
        update(Job).where(*conditions).values(status="queued", worker=None, attempts=_close_attempt(job.attempts, outcome))
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return None
    return add_event(session, job.id, "queued", message)


def _close_attempt(attempts: list[dict[str, Any]], outcome: str) -> list[dict[str, Any]]:
    if not attempts:
        return attempts
    return [*attempts[:-1], {**attempts[-1], "ended_at": utcnow().isoformat(), "outcome": outcome}]


def cancel_queued(session: Session, job_id: str) -> JobEvent | None:
    now = utcnow()
    result = session.execute(
        update(Job).where(Job.id == job_id, Job.status == "queued").values(status="cancelled", finished_at=now)
    )
    if result.rowcount != 1:
        return None
    return add_event(session, job_id, "cancelled", "cancelled before it started", now)


def request_cancel(session: Session, job_id: str) -> bool:
    """Flag a running job; True when the flag was newly set (or already set)."""
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == "running", Job.cancel_requested_at.is_(None))
        .values(cancel_requested_at=utcnow())
    )
    return result.rowcount == 1


def cancel_requested(session: Session, job_id: str) -> bool:
    return session.scalar(select(Job.cancel_requested_at).where(Job.id == job_id)) is not None


def record_epoch(
    session: Session, job_id: str, epoch: int, logs: dict[str, float], duration_s: float, finished_at: datetime | None = None
) -> EpochMetric | None:
    """Write one epoch row at most once; returns None when that epoch was already recorded."""
    row = EpochMetric(job_id=job_id, epoch=epoch, logs=logs, duration_s=duration_s, finished_at=finished_at or utcnow())
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return None
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.epochs_completed < epoch)
        .values(epochs_completed=epoch, latest=logs)
    )
    return row


def finish(
    session: Session,
    job_id: str,
    *,
    status: str,
    message: str,
    error: dict[str, Any] | None = None,
    model_path: str | None = None,
) -> JobEvent:
    now = utcnow()
    job = session.get(Job, job_id)
    attempts = _close_attempt(job.attempts, status) if job is not None else []
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(status=status, finished_at=now, error=error, model_path=model_path, attempts=attempts)
        .execution_options(synchronize_session=False)
    )
    return add_event(session, job_id, status, message, now)


def epochs_after(session: Session, job_id: str, after: int) -> list[EpochMetric]:
    stmt = select(EpochMetric).where(EpochMetric.job_id == job_id, EpochMetric.epoch > after).order_by(EpochMetric.epoch)
    return list(session.scalars(stmt))


def events_after(session: Session, job_id: str, after_seq: int) -> list[JobEvent]:
    stmt = select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.id > after_seq).order_by(JobEvent.id)
    return list(session.scalars(stmt))


def delete(session: Session, job: Job) -> None:
    session.delete(job)
    session.flush()
