"""Job, status-history and epoch-metric queries. Status changes are not here: app/lifecycle.py owns them."""

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db import publish_after_commit
from app.events.messages import epoch_message
from app.lifecycle import JobStatus
from app.models import EpochMetric, Job, JobEvent, utcnow
from app.repositories.pagination import Page, SelectT, newest_first_rows


def get(session: Session, job_id: str) -> Job | None:
    return session.get(Job, job_id)


def get_owned(session: Session, owner_id: str, job_id: str) -> Job | None:
    """Another owner's job does not exist, as far as the caller can tell."""
    return session.scalar(select(Job).where(Job.id == job_id, Job.owner_id == owner_id))


def owner_of(session: Session, job_id: str) -> str | None:
    return session.scalar(select(Job.owner_id).where(Job.id == job_id))


def owned_status(session: Session, owner_id: str, job_id: str) -> str | None:
    return session.scalar(select(Job.status).where(Job.id == job_id, Job.owner_id == owner_id))


def owned_model(session: Session, owner_id: str, job_id: str) -> tuple[str, str | None] | None:
    """A job's status and model file, without loading the job and its history (evaluate / predict's hot path)."""
    row = session.execute(select(Job.status, Job.model_path).where(Job.id == job_id, Job.owner_id == owner_id)).first()
    return (row.status, row.model_path) if row is not None else None


def page_ids(
    session: Session,
    owner_id: str,
    *,
    status: str | None,
    sweep_id: str | None,
    queue: str | None = None,
    cursor: str | None,
    limit: int,
) -> Page[str]:
    """A page of job ids only: the API renders each job from memory."""
    listed = _listed(select(Job.id, Job.created_at), owner_id, status, sweep_id, queue)
    rows = newest_first_rows(session, listed, Job, cursor, limit)
    return Page(items=[row.id for row in rows.items], next_cursor=rows.next_cursor)


def _listed(stmt: SelectT, owner_id: str, status: str | None, sweep_id: str | None, queue: str | None) -> SelectT:
    stmt = stmt.where(Job.owner_id == owner_id)
    if status:
        stmt = stmt.where(Job.status == status)
    if sweep_id:
        stmt = stmt.where(Job.sweep_id == sweep_id)
    if queue:
        stmt = stmt.where(Job.queue == queue)
    return stmt


def stale_running(session: Session, cutoff: datetime) -> list[Job]:
    stmt = select(Job).where(Job.status == JobStatus.RUNNING, Job.heartbeat_at < cutoff)
    return list(session.scalars(stmt))


def queued_counts(session: Session) -> dict[str, int]:
    """Queued jobs per queue (queues with none are left out)."""
    stmt = select(Job.queue, func.count()).where(Job.status == JobStatus.QUEUED).group_by(Job.queue)
    return {queue: int(count) for queue, count in session.execute(stmt).tuples()}


def cancel_requested(session: Session, job_id: str) -> bool:
    return session.scalar(select(Job.cancel_requested_at).where(Job.id == job_id)) is not None


def record_epoch(
    session: Session, job_id: str, epoch: int, logs: dict[str, float], duration_s: float, finished_at: datetime | None = None
) -> EpochMetric | None:
    """Write one epoch row at most once; returns None when that epoch was already recorded.
    Its event is published once the caller commits."""
    row = EpochMetric(job_id=job_id, epoch=epoch, logs=logs, duration_s=duration_s, finished_at=finished_at or utcnow())
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return None
    session.execute(update(Job).where(Job.id == job_id, Job.epochs_completed < epoch).values(epochs_completed=epoch, latest=logs))
    publish_after_commit(session, epoch_message(row))
    return row


def epochs_after(session: Session, job_id: str, after: int, limit: int | None = None) -> list[EpochMetric]:
    stmt = select(EpochMetric).where(EpochMetric.job_id == job_id, EpochMetric.epoch > after).order_by(EpochMetric.epoch)
    return list(session.scalars(stmt.limit(limit)))


def losses(session: Session, job_id: str) -> list[tuple[int, float | None]]:
    """Each finished epoch's loss, in order: what a rerun must repeat exactly."""
    stmt = select(EpochMetric.epoch, EpochMetric.logs).where(EpochMetric.job_id == job_id).order_by(EpochMetric.epoch)
    return [(epoch, logs.get("loss")) for epoch, logs in session.execute(stmt).tuples()]


def events_after(session: Session, job_id: str, after_seq: int) -> list[JobEvent]:
    stmt = select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.id > after_seq).order_by(JobEvent.id)
    return list(session.scalars(stmt))


def counts_by_status_and_queue(session: Session) -> dict[tuple[str, str], int]:
    """Every job, counted by (status, queue): one GROUP BY, for GET /metrics."""
    stmt = select(Job.status, Job.queue, func.count()).group_by(Job.status, Job.queue)
    return {(status, queue): int(count) for status, queue, count in session.execute(stmt).tuples()}
