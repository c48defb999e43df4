"""Content-addressed datasets and reproducible jobs: an index to find an owner's datasets by content
hash, and each job's record (what its first attempt ran with), the job it reruns and what differed

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_dataset_owner_id_sha256", "dataset", ["owner_id", "sha256"])
    with op.batch_alter_table("job") as batch_op:
        batch_op.add_column(sa.Column("record", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("rerun_of", sa.String(40), nullable=True))
        batch_op.add_column(sa.Column("versions_differ", sa.JSON(), nullable=True))
        batch_op.create_foreign_key("fk_job_rerun_of_job", "job", ["rerun_of"], ["id"], ondelete="SET NULL")


def downgrade() -> None:
    with op.batch_alter_table("job") as batch_op:
        batch_op.drop_constraint("fk_job_rerun_of_job", type_="foreignkey")
        for column in ("versions_differ", "rerun_of", "record"):
            batch_op.drop_column(column)
    op.drop_index("ix_dataset_owner_id_sha256", table_name="dataset")
