"""sweep.queue: the queue a sweep's trials are routed to

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sweep") as batch_op:
        batch_op.add_column(sa.Column("queue", sa.String(64), nullable=False, server_default="default"))


def downgrade() -> None:
    with op.batch_alter_table("sweep") as batch_op:
        batch_op.drop_column("queue")
