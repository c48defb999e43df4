"""/v1/keys: an owner's own API keys: create (the secret shown once), list (never the secret), revoke."""

from typing import Any

from fastapi import APIRouter, Request, Response, status

from app.api.deps import AuditDep, CurrentKeyDep, CursorQuery, PageLimit, SessionDep
from app.api.problems import problems
from app.api.schemas import KeyCreate, KeyCreated, KeyPage, KeyRead
from app.errors import Forbidden
from app.services import audit as audit_service
from app.services import owners as owner_service
from app.services.audit import Action

router = APIRouter(prefix="/v1/keys", tags=["keys"])
CREATED: dict[int | str, dict[str, Any]] = {
    201: {
        "description": "The new key's record and, this once, the key itself in `key`",
        "links": {"delete_key": {"operationId": "delete_key", "parameters": {"key_id": "$response.body#/id"}}},
    }
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=KeyCreated,
    responses={**problems(403), **CREATED},
    summary="Create an API key for yourself (a `read` key can create only `read` keys)",
)
def create_key(payload: KeyCreate, key: CurrentKeyDep, session: SessionDep, audit: AuditDep) -> KeyCreated:
    scope = payload.scope or ("write" if key.scope == "write" else "read")
    if scope == "write" and key.scope != "write":
        raise Forbidden("a `read` key can create only `read` keys")
    record, secret = owner_service.create_owned_key(
        session, key.owner.id, name=payload.name, scope=scope, expires_in_s=payload.expires_in_s
    )
    audit_service.record(session, audit, Action.KEY_CREATE, record.id)
    session.commit()
    return KeyCreated(**KeyRead.model_validate(record).model_dump(), key=secret)


@router.get("", response_model=KeyPage, summary="List your API keys, newest first (never the keys themselves)")
def list_keys(
    key: CurrentKeyDep,
    session: SessionDep,
    cursor: CursorQuery = None,
    limit: PageLimit = 50,
) -> KeyPage:
    page = owner_service.list_keys(session, owner_id=key.owner.id, cursor=cursor, limit=limit)
    return KeyPage(items=[KeyRead.model_validate(k) for k in page.items], next_cursor=page.next_cursor)


@router.delete(
    "/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems(403, 404),
    summary="Revoke one of your API keys, the calling key included; it is refused at once everywhere",
    description="A `read` key may revoke only itself. Open streams of the revoked key are closed.",
)
def delete_key(key_id: str, key: CurrentKeyDep, session: SessionDep, audit: AuditDep, request: Request) -> Response:
    if key.scope != "write" and key_id != key.key_id:
        raise Forbidden("a `read` key may revoke only itself")
    owner_service.revoke_key(session, key_id, owner_id=key.owner.id)
    audit_service.record(session, audit, Action.KEY_REVOKE, key_id)
    session.commit()
    request.app.state.key_cache.drop(key_id)  # this process at once; the others hear it on the bus
    return Response(status_code=status.HTTP_204_NO_CONTENT)
