"""job.stop_reason, best_epoch, best (why training ended, its best epoch) and validation_dataset_id

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("job") as batch_op:
        batch_op.add_column(sa.Column("validation_dataset_id", sa.String(40), nullable=True))
        batch_op.add_column(sa.Column("stop_reason", sa.String(32), nullable=True))
        batch_op.add_column(sa.Column("best_epoch", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("best", sa.JSON(), nullable=True))
        batch_op.create_foreign_key(
            "fk_job_validation_dataset_id_dataset", "dataset", ["validation_dataset_id"], ["id"], ondelete="SET NULL"
        )
        batch_op.create_index("ix_job_validation_dataset_id", ["validation_dataset_id"])


def downgrade() -> None:
    with op.batch_alter_table("job") as batch_op:
        batch_op.drop_index("ix_job_validation_dataset_id")
        batch_op.drop_constraint("fk_job_validation_dataset_id_dataset", type_="foreignkey")
        batch_op.drop_column("best")
        batch_op.drop_column("best_epoch")
        batch_op.drop_column("stop_reason")
        batch_op.drop_column("validation_dataset_id")
