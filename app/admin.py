"""Server-side administration: API keys. Used by `epochly keys create|list|revoke` on the server
(straight to the database) and by `make run`'s first start."""

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.orm import Session

from app.db import make_engine, make_session_factory, session_scope
from app.events.publisher import make_publisher
from app.migrate import upgrade_to_head
from app.services import audit as audit_service
from app.services import owners as owner_service
from app.services.audit import Action, AuditContext
from app.services.owners import Scope
from app.settings import Settings, get_settings

LOCAL_OWNER = "local"
LOCAL_KEY_FILE = "local-api-key"


# What the audit log shows as the client of a call made with the server-side CLI.
CLI_CLIENT = f"cli@{socket.gethostname()}"[:100]


@contextmanager
def _admin_session(settings: Settings | None) -> Iterator[Session]:
    settings = settings or get_settings()
    settings.prepare_data_dir()
    upgrade_to_head(settings.resolved_database_url)
    engine = make_engine(settings.resolved_database_url)
    try:
        # With the service's publisher, so a revocation reaches every running API process.
        with session_scope(make_session_factory(engine, publisher=make_publisher(settings))) as session:
            yield session
    finally:
        engine.dispose()


def create_api_key(
    owner_name: str,
    settings: Settings | None = None,
    *,
    name: str = "key",
    scope: Scope = "write",
    expires_in_s: int | None = None,
) -> str:
    """A new key for the owner (created if new), returned this once."""
    with _admin_session(settings) as session:
        record, secret = owner_service.create_key(session, owner_name, name=name, scope=scope, expires_in_s=expires_in_s)
        audit_service.record(session, AuditContext(record.owner_id, None, CLI_CLIENT), Action.KEY_CREATE, record.id)
        return secret


def list_api_keys(owner_name: str | None = None, settings: Settings | None = None) -> list[dict[str, Any]]:
    """Every key's record (of one owner), never a secret."""
    with _admin_session(settings) as session:
        return [
            {
                "id": key.id,
                "owner": owner.name,
                "name": key.name,
                "prefix": key.prefix,
                "scope": key.scope,
                "created_at": _iso(key.created_at),
                "expires_at": _iso(key.expires_at),
                "last_used_at": _iso(key.last_used_at),
                "revoked_at": _iso(key.revoked_at),
            }
            for key, owner in owner_service.all_keys(session, owner_name)
        ]


def revoke_api_key(key_id: str, settings: Settings | None = None) -> None:
    """Revoke any owner's key; running API processes refuse it within a second (the event bus)."""
    with _admin_session(settings) as session:
        key = owner_service.revoke_key(session, key_id, owner_id=None)
        audit_service.record(session, AuditContext(key.owner_id, None, CLI_CLIENT), Action.KEY_REVOKE, key.id)


def _iso(moment: Any) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment is not None else None


def ensure_local_key(settings: Settings) -> str | None:
    """On a service with no keys at all, create one for the local user and keep it in DATA_DIR (mode 600).

    Returns the new key, or None when keys exist already (it is never shown twice)."""
    engine = make_engine(settings.resolved_database_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            if owner_service.any_keys(session):
                return None
            _, key = owner_service.create_key(session, LOCAL_OWNER)
    finally:
        engine.dispose()
    path = settings.data_dir / LOCAL_KEY_FILE
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as f:
        f.write(key + "\n")
    return key
