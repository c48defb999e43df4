"""metric_count: Prometheus counters and histograms kept in the database, so the events of workers and
schedulers on any machine are counted once

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "metric_count",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("labels", sa.String(400), primary_key=True),
        sa.Column("value", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("metric_count")
