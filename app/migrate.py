"""Apply Alembic migrations programmatically (the service does this at start)."""

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config

ROOT = Path(__file__).resolve().parent.parent


def upgrade_to_head(database_url: str) -> None:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["database_url"] = database_url
    with _sqlite_lock(database_url):
        command.upgrade(config, "head")


@contextmanager
def _sqlite_lock(database_url: str) -> Iterator[None]:
    """API processes started together on one SQLite file (WEB_CONCURRENCY) migrate one after the
    other; SQLite would let two read the same version and both try the same DDL. (PostgreSQL takes
    an advisory lock in migrations/env.py instead.)"""
    prefix = "sqlite:///"
    if not database_url.startswith(prefix) or database_url == prefix + ":memory:":
        yield
        return
    with open(database_url.removeprefix(prefix) + ".migrate.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
