"""Persisted metric samples (app/persisted_metrics.py says what they count)."""

from datetime import datetime

from sqlalchemy import event, select
from sqlalchemy.orm import Session, SessionTransaction

from app.db import upsert
from app.models import Job, MetricCount

_PENDING = "epochly.metric_increments"


def add(session: Session, increments: dict[tuple[str, str], float]) -> None:
    """Adds to each (name, labels) sample when the session commits, not now: every transaction then
    touches the shared sample rows last, in sorted order, so two transactions never wait on each other
    in a cycle (a job row, then a sample, against that sample, then the job row)."""
    pending: dict[tuple[str, str], float] = session.info.setdefault(_PENDING, {})
    for key, value in increments.items():
        pending[key] = pending.get(key, 0.0) + value


@event.listens_for(Session, "before_commit")
def _write_pending(session: Session) -> None:
    increments: dict[tuple[str, str], float] | None = session.info.pop(_PENDING, None)
    if not increments:
        return
    rows = [{"name": name, "labels": labels, "value": value} for (name, labels), value in sorted(increments.items())]
    stmt = upsert(session, MetricCount, rows)
    session.execute(
        stmt.on_conflict_do_update(index_elements=["name", "labels"], set_={"value": MetricCount.value + stmt.excluded.value})
    )


@event.listens_for(Session, "after_soft_rollback")
def _forget_pending(session: Session, previous_transaction: SessionTransaction) -> None:
    if previous_transaction.parent is None:  # the whole transaction, not a savepoint inside it
        session.info.pop(_PENDING, None)


def all_samples(session: Session) -> list[tuple[str, str, float]]:
    stmt = select(MetricCount.name, MetricCount.labels, MetricCount.value)
    return [(name, labels, value) for name, labels, value in session.execute(stmt).tuples()]


def job_queue_and_start(session: Session, job_id: str) -> tuple[str, datetime | None] | None:
    row = session.execute(select(Job.queue, Job.started_at).where(Job.id == job_id)).first()
    return (row.queue, row.started_at) if row is not None else None
