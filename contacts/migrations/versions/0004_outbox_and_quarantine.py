"""Outbox purposes and retries; quarantine for channel input that cannot become a contact

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import contacts.models

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("purpose", sa.String(length=32), nullable=False, server_default="reply")
        )
        batch_op.add_column(
            sa.Column("variables", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )
        batch_op.add_column(
            sa.Column("attempt_at", contacts.models.UtcDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index("ix_message_delivery_status", ["delivery_status"], unique=False)
    op.create_table(
        "quarantine",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("at", contacts.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("provider_id", sa.String(length=200), nullable=True),
        sa.Column("content_type", sa.String(length=127), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("storage_key", sa.String(length=300), nullable=True),
        sa.Column("resolved_at", contacts.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.String(length=64), nullable=True),
        sa.Column("resolution", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("channel", "provider_id", name="uq_quarantine_provider"),
    )
    op.create_index("ix_quarantine_at", "quarantine", ["at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_quarantine_at", table_name="quarantine")
    op.drop_table("quarantine")
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_index("ix_message_delivery_status")
        batch_op.drop_column("attempt_at")
        batch_op.drop_column("variables")
        batch_op.drop_column("purpose")
