"""The models and the migrations describe the same schema on both back ends: a column, index or
table added to one and not the other fails here (what `alembic check` does, for each back end)."""
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from app.db import make_engine
from app.models import Base


def test_models_and_migrations_do_not_drift(migrated_url):
    engine = make_engine(migrated_url)
    try:
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    finally:
        engine.dispose()
    assert differences == []
