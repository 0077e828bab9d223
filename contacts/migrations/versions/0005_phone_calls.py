"""Phone calls: wait, answer, abandonment and duration of each call behind a phone contact

Revision ID: 0005
Revises: 0007
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import contacts.models

revision: str = "0005"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "phonecall",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("call_sid", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", contacts.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("wait_seconds", sa.Float(), nullable=True),
        sa.Column("answered_at", contacts.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column("abandoned_at", contacts.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column("ended_at", contacts.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column("duration_seconds", sa.Integer(), nullable=True),
        sa.Column("end_status", sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(["contact_id"], ["contact.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("call_sid", name="uq_phonecall_call_sid"),
    )
    op.create_index("ix_phonecall_contact_id", "phonecall", ["contact_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_phonecall_contact_id", table_name="phonecall")
    op.drop_table("phonecall")
