"""Alembic environment: the URL comes from the caller or from DATABASE_URL, never from alembic.ini."""

from alembic import context

from app.db import make_engine
from app.models import Base
from app.settings import get_settings

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
            context.run_migrations()
    engine.dispose()
