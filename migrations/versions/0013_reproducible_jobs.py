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


def downgrade() -> None:
    op.drop_index("ix_dataset_owner_id_sha256", table_name="dataset")
