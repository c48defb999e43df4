"""Job, status-history and epoch-metric queries."""
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


def page(session: Session, *, status: str | None, cursor: str | None, limit: int) -> Page[Job]:
    stmt = select(Job)
    if status:
        stmt = stmt.where(Job.status == status)
    return newest_first(session, stmt, Job, cursor, limit)


def claim(session: Session, job_id: str, worker: str) -> Job | None:
    """queued → running, atomically: a redelivered or duplicate message finds nothing to claim."""
    now = utcnow()
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == "queued")
        .values(status="running", started_at=now, worker=worker)
    )
    if result.rowcount != 1:
        return None
    session.add(JobEvent(job_id=job_id, status="running", message=f"started on {worker}", at=now))
    session.flush()
    return session.get(Job, job_id, populate_existing=True)


def record_epoch(session: Session, job_id: str, epoch: int, logs: dict[str, float], duration_s: float) -> bool:
    """Write one epoch row at most once; returns False when that epoch was already recorded."""
    try:
        with session.begin_nested():
            session.add(EpochMetric(job_id=job_id, epoch=epoch, logs=logs, duration_s=duration_s, finished_at=utcnow()))
    except IntegrityError:
        return False
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.epochs_completed < epoch)
        .values(epochs_completed=epoch, latest=logs)
    )
    return True


def finish(
    session: Session,
    job_id: str,
    *,
    status: str,
    message: str,
    error: dict[str, Any] | None = None,
    model_path: str | None = None,
) -> None:
    now = utcnow()
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(status=status, finished_at=now, error=error, model_path=model_path)
    )
    session.add(JobEvent(job_id=job_id, status=status, message=message, at=now))
    session.flush()


def epochs_after(session: Session, job_id: str, after: int, limit: int | None = None) -> list[EpochMetric]:
    stmt = select(EpochMetric).where(EpochMetric.job_id == job_id, EpochMetric.epoch > after).order_by(EpochMetric.epoch)
    if limit:
        stmt = stmt.limit(limit)
    return list(session.scalars(stmt))


def delete(session: Session, job: Job) -> None:
    session.delete(job)
    session.flush()
