"""Scanned post: page sources and e-mail consent of incoming letters; outgoing letters

Revision ID: 0008
Revises: 0004
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import contacts.models

revision: str = "0008"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "post_scan",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel_message_id", sa.String(length=200), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("received_at", contacts.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("email_consent", sa.Boolean(), nullable=True),
        sa.Column("pages", sa.JSON(), nullable=False),
        sa.Column("created_at", contacts.models.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["contact_id"], ["contact.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("channel_message_id"),
    )
    op.create_index("ix_post_scan_contact_id", "post_scan", ["contact_id"], unique=False)
    op.create_table(
        "post_letter",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(length=32), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("storage_key", sa.String(length=300), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("pages", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", contacts.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("printed_at", contacts.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column("posted_at", contacts.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column("updated_by", sa.String(length=64), nullable=True),
        sa.Column("email_message_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["contact_id"], ["contact.id"]),
        sa.ForeignKeyConstraint(["message_id"], ["message.id"]),
        sa.ForeignKeyConstraint(["email_message_id"], ["message.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("message_id"),
    )
    op.create_index("ix_post_letter_contact_id", "post_letter", ["contact_id"], unique=False)
    op.create_index("ix_post_letter_status", "post_letter", ["status"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_post_letter_status", table_name="post_letter")
    op.drop_index("ix_post_letter_contact_id", table_name="post_letter")
    op.drop_table("post_letter")
    op.drop_index("ix_post_scan_contact_id", table_name="post_scan")
    op.drop_table("post_scan")
