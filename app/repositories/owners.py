"""Owner and API-key queries."""

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.lifecycle import ACTIVE
from app.models import ApiKey, Dataset, Job, Owner


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


def owner_for_key_hash(session: Session, key_hash: str) -> Owner | None:
    stmt = select(Owner).join(ApiKey, ApiKey.owner_id == Owner.id).where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None))
    return session.scalar(stmt)


def key_count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(ApiKey)) or 0)


def active_job_count(session: Session, owner_id: str) -> int:
    stmt = select(func.count()).select_from(Job).where(Job.owner_id == owner_id, Job.status.in_(ACTIVE))
    return int(session.scalar(stmt) or 0)


def stored_bytes(session: Session, owner_id: str) -> int:
    return int(session.scalar(select(func.coalesce(func.sum(Dataset.size_bytes), 0)).where(Dataset.owner_id == owner_id)) or 0)
