"""scheduler_lease: one scheduler process leads dispatch and recovery at a time

Revision ID: 0005
Revises: 0004
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    lease = op.create_table(
        "scheduler_lease",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("holder", sa.String(200), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("renewed_at", sa.DateTime(timezone=True), nullable=True),
    )
    # The row exists from the start, so taking the lead is always a conditional UPDATE, never an INSERT race.
    op.bulk_insert(
        lease, [{"name": "scheduler", "holder": None, "expires_at": datetime(1970, 1, 1, tzinfo=UTC), "renewed_at": None}]
    )


def downgrade() -> None:
    op.drop_table("scheduler_lease")
