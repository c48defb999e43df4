"""/v1/audit: the caller's own audit records, oldest first. Read-only: no route edits or deletes one."""

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.deps import DIGITS_ONLY, OwnerDep, PageLimit, SessionDep
from app.api.schemas import AuditPage, AuditRead
from app.services import audit as audit_service

router = APIRouter(prefix="/v1", tags=["audit"])


@router.get(
    "/audit",
    response_model=AuditPage,
    summary="Your audit log, oldest first: every state-changing call, with the key, action, target, client and outcome",
)
def list_audit(
    owner: OwnerDep,
    session: SessionDep,
    after: Annotated[
        int, Query(ge=0, le=2**62, description="`next_cursor` of the previous page: the last record id seen"), DIGITS_ONLY
    ] = 0,
    limit: PageLimit = 50,
) -> AuditPage:
    page = audit_service.list_records(session, owner_id=owner.id, after=after, limit=limit)
    return AuditPage(items=[AuditRead.model_validate(r) for r in page.items], next_cursor=page.next_cursor)
