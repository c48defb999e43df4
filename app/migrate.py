"""Apply Alembic migrations programmatically (the service does this at start)."""

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config

PACKAGE = Path(__file__).resolve().parent


def migrations_dir() -> Path:
    """Installed from a wheel, migrations/ ships inside the package (setup.py maps it to app.migrations);
    in a checkout (editable install, `alembic upgrade head`) it is the top-level folder the wheel takes it from."""
    packaged = PACKAGE / "migrations"
    return packaged if (packaged / "env.py").is_file() else PACKAGE.parent / "migrations"


def alembic_config(database_url: str) -> Config:
    # No alembic.ini: the repository's copy serves the `alembic` command line only, and a wheel has none.
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["database_url"] = database_url
    return config


def upgrade_to_head(database_url: str) -> None:
    with _sqlite_lock(database_url):
        command.upgrade(alembic_config(database_url), "head")


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
