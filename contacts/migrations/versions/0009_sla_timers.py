"""SLA engine: norm and deadline state on the contact, and the table of due timers

Revision ID: 0009
Revises: 0010
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import contacts.models

revision: str = "0009"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DT = contacts.models.UtcDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("contact", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sla_norm", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("norm_due", UTC_DT, nullable=True))
        batch_op.add_column(sa.Column("sla_state", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("ack_breached_at", UTC_DT, nullable=True))
        batch_op.add_column(sa.Column("answer_breached_at", UTC_DT, nullable=True))
        batch_op.add_column(sa.Column("extended_at", UTC_DT, nullable=True))
        batch_op.add_column(
            sa.Column("sla_paused_seconds", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.create_index("ix_contact_sla_state", ["sla_state"], unique=False)
    op.create_table(
        "sla_timer",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("due_at", UTC_DT, nullable=False),
        sa.Column("run_at", UTC_DT, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("fired_at", UTC_DT, nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(["contact_id"], ["contact.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_sla_timer_contact_id", "sla_timer", ["contact_id"], unique=False)
    op.create_index(
        "ix_sla_timer_pending",
        "sla_timer",
        ["run_at"],
        unique=False,
        sqlite_where=sa.text("fired_at IS NULL"),
        postgresql_where=sa.text("fired_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_sla_timer_pending", table_name="sla_timer")
    op.drop_index("ix_sla_timer_contact_id", table_name="sla_timer")
    op.drop_table("sla_timer")
    with op.batch_alter_table("contact", schema=None) as batch_op:
        batch_op.drop_index("ix_contact_sla_state")
        batch_op.drop_column("sla_paused_seconds")
        batch_op.drop_column("extended_at")
        batch_op.drop_column("answer_breached_at")
        batch_op.drop_column("ack_breached_at")
        batch_op.drop_column("sla_state")
        batch_op.drop_column("norm_due")
        batch_op.drop_column("sla_norm")
