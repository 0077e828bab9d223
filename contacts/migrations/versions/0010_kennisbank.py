"""Kennisbank: article versions, gaps, and the article version a reply was based on

Revision ID: 0010
Revises: 0007
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import contacts.models

revision: str = "0010"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "kb_article_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("source_sha256", sa.String(length=64), nullable=False),
        sa.Column("origin", sa.String(length=8), nullable=False),
        sa.Column("author", sa.String(length=64), nullable=False),
        sa.Column("created_at", contacts.models.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("slug", "version", name="uq_kb_article_version"),
    )
    op.create_index("ix_kb_article_version_slug", "kb_article_version", ["slug"], unique=False)
    op.create_table(
        "kb_gap",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("query", sa.String(length=300), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("best_slug", sa.String(length=64), nullable=True),
        sa.Column("best_score", sa.Float(), nullable=False),
        sa.Column("first_at", contacts.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("last_at", contacts.models.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("query"),
    )
    op.create_index("ix_kb_gap_last_at", "kb_gap", ["last_at"], unique=False)
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("article_slug", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("article_version", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_column("article_version")
        batch_op.drop_column("article_slug")
    op.drop_index("ix_kb_gap_last_at", table_name="kb_gap")
    op.drop_table("kb_gap")
    op.drop_index("ix_kb_article_version_slug", table_name="kb_article_version")
    op.drop_table("kb_article_version")
