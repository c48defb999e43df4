"""job.queue and the worker table: jobs routed to named queues, and the workers that consume them

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("job") as batch_op:
        batch_op.add_column(sa.Column("queue", sa.String(64), nullable=False, server_default="default"))
        batch_op.create_index("ix_job_queue", ["queue"])
    op.create_table(
        "worker",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("queues", sa.JSON(), nullable=False),
        sa.Column("devices", sa.JSON(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_worker_heartbeat_at", "worker", ["heartbeat_at"])


def downgrade() -> None:
    op.drop_index("ix_worker_heartbeat_at", table_name="worker")
    op.drop_table("worker")
    with op.batch_alter_table("job") as batch_op:
        batch_op.drop_index("ix_job_queue")
        batch_op.drop_column("queue")
