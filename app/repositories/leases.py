"""The scheduler's leadership lease: a conditional UPDATE of one row, so it works the same on both back ends."""

from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from app.models import SchedulerLease, utcnow

SCHEDULER = "scheduler"


def acquire(session: Session, holder: str, ttl_s: float) -> bool:
    """Take or renew the lease if it is free, expired or already `holder`'s; False if another process holds it."""
    now = utcnow()
    result = session.execute(
        update(SchedulerLease)
        .where(SchedulerLease.name == SCHEDULER, or_(SchedulerLease.holder == holder, SchedulerLease.expires_at < now))
        .values(holder=holder, expires_at=now + timedelta(seconds=ttl_s), renewed_at=now)
    )
    assert isinstance(result, CursorResult)
    return result.rowcount == 1


def release(session: Session, holder: str) -> None:
    """Hand the lease over at once instead of making a successor wait for it to expire."""
    session.execute(
        update(SchedulerLease)
        .where(SchedulerLease.name == SCHEDULER, SchedulerLease.holder == holder)
        .values(holder=None, expires_at=utcnow())
    )


def current(session: Session) -> SchedulerLease | None:
    """The lease as it stands; its holder leads only while `expires_at` is in the future."""
    return session.scalar(select(SchedulerLease).where(SchedulerLease.name == SCHEDULER))


def is_held(lease: SchedulerLease | None, now: datetime | None = None) -> bool:
    return lease is not None and lease.holder is not None and lease.expires_at > (now or utcnow())
