"""outbox, inbox and notification references

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 08:48:43.612062
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _altered_schema() -> str | None:
    """Alembic renders ALTER TABLE itself, past the engine's schema translation, so SQLite
    (one file per service, no schemas) must not be given the schema name there."""
    return None if op.get_bind().dialect.name == "sqlite" else "user_svc"


def upgrade() -> None:
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.String(length=200), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("handled_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id", name=op.f("pk_inbox")),
        schema="user_svc",
    )
    op.create_index(
        op.f("ix_inbox_handled_at"), "inbox", ["handled_at"], unique=False, schema="user_svc"
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("exchange", sa.String(length=16), nullable=False),
        sa.Column("routing_key", sa.String(length=255), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        schema="user_svc",
    )
    op.create_index(
        "ix_outbox_unpublished",
        "outbox",
        ["next_attempt_at", "created_at"],
        unique=False,
        schema="user_svc",
        postgresql_where=sa.text("published_at IS NULL"),
        sqlite_where=sa.text("published_at IS NULL"),
    )
    op.add_column(
        "notifications", sa.Column("reference", sa.Uuid(), nullable=True), schema=_altered_schema()
    )
    op.create_index(
        "ix_notifications_user_kind_reference",
        "notifications",
        ["user_id", "kind", "reference"],
        unique=True,
        schema="user_svc",
    )


def downgrade() -> None:
    op.drop_index(
        "ix_notifications_user_kind_reference", table_name="notifications", schema="user_svc"
    )
    op.drop_column("notifications", "reference", schema=_altered_schema())
    op.drop_index(
        "ix_outbox_unpublished",
        table_name="outbox",
        schema="user_svc",
        postgresql_where=sa.text("published_at IS NULL"),
        sqlite_where=sa.text("published_at IS NULL"),
    )
    op.drop_table("outbox", schema="user_svc")
    op.drop_index(op.f("ix_inbox_handled_at"), table_name="inbox", schema="user_svc")
    op.drop_table("inbox", schema="user_svc")
