"""Sign-in for the desk and dashboard: password hashes, server-side sessions, the audit log of
who viewed which resident (append-only, like the contact history), and the dashboard's samples

Revision ID: 0011
Revises: 0009
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import contacts.models

revision: str = "0011"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MESSAGE = "the audit log is append-only"


def upgrade() -> None:
    with op.batch_alter_table("agent", schema=None) as batch_op:
        batch_op.add_column(sa.Column("password_hash", sa.String(length=200), nullable=True))
        batch_op.add_column(
            sa.Column("failed_signins", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column(
                "signin_blocked_until", contacts.models.UtcDateTime(timezone=True), nullable=True
            )
        )
    op.create_table(
        "websession",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", contacts.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", contacts.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", contacts.models.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["agent_id"], ["agent.id"]),
        sa.PrimaryKeyConstraint("id_hash"),
    )
    op.create_index("ix_websession_agent_id", "websession", ["agent_id"], unique=False)
    op.create_table(
        "auditlog",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", contacts.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("resident_id", sa.Integer(), nullable=True),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("reference", sa.String(length=32), nullable=True),
        sa.Column("view", sa.String(length=32), nullable=False),
        sa.Column("via", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(["agent_id"], ["agent.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_auditlog_at", "auditlog", ["at"], unique=False)
    op.create_index("ix_auditlog_resident_id", "auditlog", ["resident_id"], unique=False)
    op.create_index("ix_auditlog_agent_id", "auditlog", ["agent_id"], unique=False)
    op.create_table(
        "queuesample",
        sa.Column("at", contacts.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("waiting", sa.Integer(), nullable=False),
        sa.Column("oldest_wait_seconds", sa.Float(), nullable=False),
        sa.Column("service_level", sa.Float(), nullable=True),
        sa.Column("per_queue", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("at"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"""
            CREATE FUNCTION kcc_audit_is_append_only() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION '{MESSAGE}';
            END;
            $$ LANGUAGE plpgsql
            """
        )
        op.execute(
            "CREATE TRIGGER auditlog_append_only BEFORE UPDATE OR DELETE ON auditlog "
            "FOR EACH ROW EXECUTE FUNCTION kcc_audit_is_append_only()"
        )
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER auditlog_no_{action.lower()} BEFORE {action} ON auditlog "
                f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER auditlog_append_only ON auditlog")
        op.execute("DROP FUNCTION kcc_audit_is_append_only()")
    else:
        op.execute("DROP TRIGGER auditlog_no_update")
        op.execute("DROP TRIGGER auditlog_no_delete")
    op.drop_table("queuesample")
    op.drop_index("ix_auditlog_agent_id", table_name="auditlog")
    op.drop_index("ix_auditlog_resident_id", table_name="auditlog")
    op.drop_index("ix_auditlog_at", table_name="auditlog")
    op.drop_table("auditlog")
    op.drop_index("ix_websession_agent_id", table_name="websession")
    op.drop_table("websession")
    with op.batch_alter_table("agent", schema=None) as batch_op:
        batch_op.drop_column("signin_blocked_until")
        batch_op.drop_column("failed_signins")
        batch_op.drop_column("password_hash")
