"""Dataset queries."""

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from app.lifecycle import ACTIVE
from app.models import Dataset, Job
from app.repositories.pagination import Page, newest_first


def add(session: Session, dataset: Dataset) -> Dataset:
    session.add(dataset)
    session.flush()
    return dataset


def get(session: Session, dataset_id: str) -> Dataset | None:
    return session.get(Dataset, dataset_id)


def get_owned(session: Session, owner_id: str, dataset_id: str) -> Dataset | None:
    """Another owner's dataset does not exist, as far as the caller can tell."""
    return session.scalar(select(Dataset).where(Dataset.id == dataset_id, Dataset.owner_id == owner_id))


def page(session: Session, owner_id: str, *, sha256: str | None = None, cursor: str | None, limit: int) -> Page[Dataset]:
    stmt = select(Dataset).where(Dataset.owner_id == owner_id)
    if sha256 is not None:
        stmt = stmt.where(Dataset.sha256 == sha256)
    return newest_first(session, stmt, Dataset, cursor, limit)


def active_job_count(session: Session, dataset_id: str) -> int:
    stmt = (
        select(func.count())
        .select_from(Job)
        .where(or_(Job.dataset_id == dataset_id, Job.validation_dataset_id == dataset_id), Job.status.in_(ACTIVE))
    )
    return int(session.scalar(stmt) or 0)


def storage_users(session: Session, storage_key: str) -> int:
    return int(session.scalar(select(func.count()).select_from(Dataset).where(Dataset.storage_key == storage_key)) or 0)


def delete(session: Session, dataset: Dataset) -> None:
    session.delete(dataset)
    session.flush()
