"""Index for the router's escalation sweep: queued contacts by escalation level and arrival

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_contact_escalation", "contact", ["status", "escalation_level", "enqueued_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_contact_escalation", table_name="contact")
