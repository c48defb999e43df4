"""sweep, and job.sweep_id / trial / params / sweep_attrs / objective: hyperparameter sweeps whose trials are jobs

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sweep",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("owner_id", sa.String(40), sa.ForeignKey("owner.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("dataset_id", sa.String(40), sa.ForeignKey("dataset.id", ondelete="SET NULL"), nullable=True),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("search", sa.JSON(), nullable=False),
        sa.Column("sampler", sa.String(16), nullable=False),
        sa.Column("pruner", sa.String(16), nullable=False),
        sa.Column("objective_metric", sa.String(200), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("trials", sa.Integer(), nullable=False),
        sa.Column("parallel", sa.Integer(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_sweep_owner_id", "sweep", ["owner_id"])
    op.create_index("ix_sweep_dataset_id", "sweep", ["dataset_id"])
    op.create_index("ix_sweep_created_at", "sweep", ["created_at"])
    with op.batch_alter_table("job") as batch_op:
        batch_op.add_column(sa.Column("sweep_id", sa.String(40), nullable=True))
        batch_op.add_column(sa.Column("trial", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("params", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("sweep_attrs", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("objective", sa.Float(), nullable=True))
        batch_op.create_foreign_key("fk_job_sweep_id_sweep", "sweep", ["sweep_id"], ["id"], ondelete="CASCADE")
        batch_op.create_index("ix_job_sweep_id", ["sweep_id"])
        batch_op.create_unique_constraint("uq_job_sweep_trial", ["sweep_id", "trial"])


def downgrade() -> None:
    with op.batch_alter_table("job") as batch_op:
        batch_op.drop_constraint("uq_job_sweep_trial", type_="unique")
        batch_op.drop_index("ix_job_sweep_id")
        batch_op.drop_constraint("fk_job_sweep_id_sweep", type_="foreignkey")
        for column in ("objective", "sweep_attrs", "params", "trial", "sweep_id"):
            batch_op.drop_column(column)
    op.drop_table("sweep")
