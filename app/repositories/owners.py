"""Owner, API-key and audit-log queries."""

from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.db import upsert
from app.lifecycle import ACTIVE
from app.models import ApiKey, AuditRecord, Dataset, Job, KeyRefusal, Owner
from app.repositories.pagination import Page, newest_first


def by_name(session: Session, name: str) -> Owner | None:
    return session.scalar(select(Owner).where(Owner.name == name))


def add(session: Session, owner: Owner) -> Owner:
    session.add(owner)
    session.flush()
    return owner


def add_key(session: Session, key: ApiKey) -> ApiKey:
    session.add(key)
    session.flush()
    return key


def key_by_hash(session: Session, key_hash: str) -> tuple[ApiKey, Owner] | None:
    """The key with this hash and its owner, revoked or expired included (the caller says which)."""
    row = session.execute(
        select(ApiKey, Owner).join(Owner, ApiKey.owner_id == Owner.id).where(ApiKey.key_hash == key_hash)
    ).first()
    return (row[0], row[1]) if row is not None else None


def get_key(session: Session, key_id: str, *, owner_id: str | None) -> ApiKey | None:
    """A key by id; with owner_id, another owner's key does not exist."""
    stmt = select(ApiKey).where(ApiKey.id == key_id)
    if owner_id is not None:
        stmt = stmt.where(ApiKey.owner_id == owner_id)
    return session.scalar(stmt)


def key_page(session: Session, owner_id: str, *, cursor: str | None, limit: int) -> Page[ApiKey]:
    return newest_first(session, select(ApiKey).where(ApiKey.owner_id == owner_id), ApiKey, cursor, limit)


def all_keys(session: Session, owner_id: str | None) -> list[tuple[ApiKey, Owner]]:
    stmt = select(ApiKey, Owner).join(Owner, ApiKey.owner_id == Owner.id)
    if owner_id is not None:
        stmt = stmt.where(ApiKey.owner_id == owner_id)
    return [(k, o) for k, o in session.execute(stmt.order_by(Owner.name, ApiKey.created_at, ApiKey.id))]


def touch_key(session: Session, key_id: str, now: datetime, interval: timedelta) -> None:
    """last_used_at = now, unless another process wrote it within `interval` (so at most once per interval)."""
    session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, (ApiKey.last_used_at.is_(None)) | (ApiKey.last_used_at < now - interval))
        .values(last_used_at=now)
    )


def add_refusals(session: Session, key_id: str, status: int, count: int, at: datetime) -> None:
    """Adds to a key's refusal counter in one statement, so two API processes adding to a new counter
    at once both count (an UPDATE-else-INSERT would lose one to the primary key)."""
    stmt = upsert(session, KeyRefusal, [{"key_id": key_id, "status": status, "count": count, "last_at": at}])
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["key_id", "status"],
            set_={"count": KeyRefusal.count + stmt.excluded.count, "last_at": stmt.excluded.last_at},
        )
    )


def hold(session: Session, owner_id: str) -> None:
    """Holds the owner's row until the transaction ends (a no-op UPDATE: a row lock on PostgreSQL, the
    write lock on SQLite), so one owner's quota checks and the writes they allow run one at a time."""
    session.execute(update(Owner).where(Owner.id == owner_id).values(id=Owner.id))


def key_count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(ApiKey)) or 0)


def active_job_count(session: Session, owner_id: str) -> int:
    stmt = select(func.count()).select_from(Job).where(Job.owner_id == owner_id, Job.status.in_(ACTIVE))
    return int(session.scalar(stmt) or 0)


def stored_bytes(session: Session, owner_id: str) -> int:
    return int(session.scalar(select(func.coalesce(func.sum(Dataset.stored_bytes), 0)).where(Dataset.owner_id == owner_id)) or 0)


def add_audit(session: Session, record: AuditRecord) -> AuditRecord:
    session.add(record)
    session.flush()
    return record


def audit_after(session: Session, owner_id: str, *, after: int, limit: int) -> Page[AuditRecord]:
    """Oldest first, after record id `after`; the cursor is the last record's id."""
    stmt = select(AuditRecord).where(AuditRecord.owner_id == owner_id, AuditRecord.id > after).order_by(AuditRecord.id)
    rows = list(session.scalars(stmt.limit(limit + 1)))
    next_cursor = str(rows[limit - 1].id) if len(rows) > limit else None
    return Page(items=rows[:limit], next_cursor=next_cursor)
