"""The audit log: one record per state-changing call, added in the transaction of the change it
records (so a rolled-back change leaves no record, and a committed one always has one).

Records are append-only: nothing in the service updates or deletes them (an owner's are removed
only with the owner, by the database's cascade)."""

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy.orm import Session

from app.models import AuditRecord, utcnow
from app.repositories import owners as owners_repo
from app.repositories.pagination import Page


class Action(StrEnum):
    DATASET_UPLOAD = "dataset.upload"
    DATASET_DELETE = "dataset.delete"
    JOB_SUBMIT = "job.submit"
    JOB_CANCEL = "job.cancel"
    # Sweeps record these in the same transaction as the sweep's own write, exactly as jobs do.
    SWEEP_CREATE = "sweep.create"
    SWEEP_CANCEL = "sweep.cancel"
    KEY_CREATE = "key.create"
    KEY_REVOKE = "key.revoke"


OK = "ok"


@dataclass(frozen=True)
class AuditContext:
    """Who is calling: passed from the route into whatever service writes the change."""

    owner_id: str
    key_id: str | None
    client: str | None


def record(session: Session, context: AuditContext, action: Action, target_id: str | None, outcome: str = OK) -> None:
    owners_repo.add_audit(
        session,
        AuditRecord(
            at=utcnow(),
            owner_id=context.owner_id,
            key_id=context.key_id,
            action=str(action),
            target_id=target_id,
            client=(context.client or "")[:100] or None,
            outcome=outcome,
        ),
    )


def list_records(session: Session, *, owner_id: str, after: int, limit: int) -> Page[AuditRecord]:
    return owners_repo.audit_after(session, owner_id, after=after, limit=limit)
