"""key records (name, scope, expiry, last use), the audit log, refusal counters, stored-size quotas

Existing keys keep working: they get scope `write`, no expiry and the name `key`. Their `prefix`
was stored as the first 8 characters *including* `ek_`; it becomes the 5 characters after `ek_`
that we still know (new keys store the 8 characters after `ek_`; the secret itself is never kept).
Existing datasets were stored as uploaded, so `upload_bytes` and `stored_bytes` both start at
`size_bytes`.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_key") as batch_op:
        batch_op.add_column(sa.Column("name", sa.String(200), nullable=False, server_default="key"))
        batch_op.add_column(sa.Column("scope", sa.String(8), nullable=False, server_default="write"))
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))
    api_key = sa.table("api_key", sa.column("prefix", sa.String(12)))
    op.execute(
        api_key.update().where(api_key.c.prefix.like("ek\\_%", escape="\\")).values(prefix=sa.func.substr(api_key.c.prefix, 4, 8))
    )

    with op.batch_alter_table("dataset") as batch_op:
        batch_op.add_column(sa.Column("upload_bytes", sa.BigInteger(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("stored_bytes", sa.BigInteger(), nullable=False, server_default="0"))
    dataset = sa.table(
        "dataset",
        sa.column("size_bytes", sa.BigInteger()),
        sa.column("upload_bytes", sa.BigInteger()),
        sa.column("stored_bytes", sa.BigInteger()),
    )
    op.execute(dataset.update().values(upload_bytes=dataset.c.size_bytes, stored_bytes=dataset.c.size_bytes))

    op.create_table(
        "audit_record",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("owner_id", sa.String(40), sa.ForeignKey("owner.id", ondelete="CASCADE"), nullable=False),
        sa.Column("key_id", sa.String(40), nullable=True),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("target_id", sa.String(40), nullable=True),
        sa.Column("client", sa.String(100), nullable=True),
        sa.Column("outcome", sa.String(40), nullable=False),
    )
    op.create_index("ix_audit_record_owner_id_id", "audit_record", ["owner_id", "id"])

    op.create_table(
        "key_refusal",
        sa.Column("key_id", sa.String(40), sa.ForeignKey("api_key.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("status", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("key_refusal")
    op.drop_index("ix_audit_record_owner_id_id", table_name="audit_record")
    op.drop_table("audit_record")
    with op.batch_alter_table("dataset") as batch_op:
        batch_op.drop_column("stored_bytes")
        batch_op.drop_column("upload_bytes")
    with op.batch_alter_table("api_key") as batch_op:
        batch_op.drop_column("last_used_at")
        batch_op.drop_column("expires_at")
        batch_op.drop_column("scope")
        batch_op.drop_column("name")
