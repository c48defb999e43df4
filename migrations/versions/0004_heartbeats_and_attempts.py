"""job.heartbeat_at and job.attempts: notice lost workers, show restarts

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("job") as batch_op:
        batch_op.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("attempts", sa.JSON(), nullable=False, server_default="[]"))
        batch_op.create_index("ix_job_status_heartbeat", ["status", "heartbeat_at"])


def downgrade() -> None:
    with op.batch_alter_table("job") as batch_op:
        batch_op.drop_index("ix_job_status_heartbeat")
        batch_op.drop_column("attempts")
        batch_op.drop_column("heartbeat_at")
