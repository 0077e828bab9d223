"""The contact history is append-only, enforced by the database itself

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MESSAGE = "contact history is append-only"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"""
            CREATE FUNCTION kcc_history_is_append_only() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION '{MESSAGE}';
            END;
            $$ LANGUAGE plpgsql
            """
        )
        op.execute(
            "CREATE TRIGGER contactevent_append_only BEFORE UPDATE OR DELETE ON contactevent "
            "FOR EACH ROW EXECUTE FUNCTION kcc_history_is_append_only()"
        )
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER contactevent_no_{action.lower()} BEFORE {action} ON contactevent "
                f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER contactevent_append_only ON contactevent")
        op.execute("DROP FUNCTION kcc_history_is_append_only()")
    else:
        op.execute("DROP TRIGGER contactevent_no_update")
        op.execute("DROP TRIGGER contactevent_no_delete")
