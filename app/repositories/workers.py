"""The worker registry: one row per worker process, upserted as it beats, removed as it stops."""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from app.models import WorkerRecord, utcnow


def beat(session: Session, worker_id: str, queues: Sequence[str], devices: Sequence[dict[str, str]]) -> None:
    """Insert the worker's row, or refresh it: a conditional UPDATE first, so it works the same on both back ends."""
    now = utcnow()
    result = session.execute(
        update(WorkerRecord)
        .where(WorkerRecord.id == worker_id)
        .values(queues=list(queues), devices=list(devices), heartbeat_at=now)
    )
    assert isinstance(result, CursorResult)
    if result.rowcount == 0:
        session.add(WorkerRecord(id=worker_id, queues=list(queues), devices=list(devices), started_at=now, heartbeat_at=now))


def remove(session: Session, worker_id: str) -> None:
    session.execute(delete(WorkerRecord).where(WorkerRecord.id == worker_id))


def live(session: Session, since: datetime) -> list[WorkerRecord]:
    """The workers that beat at or after `since`, longest running first."""
    stmt = select(WorkerRecord).where(WorkerRecord.heartbeat_at >= since).order_by(WorkerRecord.started_at, WorkerRecord.id)
    return list(session.scalars(stmt))


def live_queues(session: Session, since: datetime) -> set[str]:
    rows = session.scalars(select(WorkerRecord.queues).where(WorkerRecord.heartbeat_at >= since))
    return {queue for queues in rows for queue in queues}


def prune(session: Session, before: datetime) -> int:
    """Forget the workers silent since before `before` (killed, never shut down cleanly)."""
    result = session.execute(delete(WorkerRecord).where(WorkerRecord.heartbeat_at < before))
    assert isinstance(result, CursorResult)
    return int(result.rowcount)
