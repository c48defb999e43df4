"""Server-side administration: API keys. Used by `epochly keys create` and by `make run`'s first start."""

import os

from app.db import make_engine, make_session_factory, session_scope
from app.migrate import upgrade_to_head
from app.services import owners as owner_service
from app.settings import Settings, get_settings

LOCAL_OWNER = "local"
LOCAL_KEY_FILE = "local-api-key"


def create_api_key(owner_name: str, settings: Settings | None = None) -> str:
    settings = settings or get_settings()
    settings.prepare_data_dir()
    upgrade_to_head(settings.resolved_database_url)
    engine = make_engine(settings.resolved_database_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            return owner_service.create_key(session, owner_name)
    finally:
        engine.dispose()


def ensure_local_key(settings: Settings) -> str | None:
    """On a service with no keys at all, create one for the local user and keep it in DATA_DIR (mode 600).

    Returns the new key, or None when keys exist already (it is never shown twice)."""
    engine = make_engine(settings.resolved_database_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            if owner_service.any_keys(session):
                return None
            key = owner_service.create_key(session, LOCAL_OWNER)
    finally:
        engine.dispose()
    path = settings.data_dir / LOCAL_KEY_FILE
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as f:
        f.write(key + "\n")
    return key
