"""Alembic environment: the URL comes from the caller or from DATABASE_URL, never from alembic.ini."""

from alembic import context

from app.db import make_engine
from app.models import Base
from app.settings import get_settings

# Any fixed number: the advisory lock that serializes migrations on PostgreSQL.
MIGRATION_LOCK_ID = 7_405_311
config = context.config
url = config.attributes.get("database_url") or get_settings().resolved_database_url

if context.is_offline_mode():
    context.configure(url=url, target_metadata=Base.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                # Several API processes (WEB_CONCURRENCY, or one per machine) start at once: one
                # migrates, the others wait here and then find nothing left to do.
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_ID})")
            context.run_migrations()
    engine.dispose()
