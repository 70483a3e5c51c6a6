"""outbox, inbox, bookings; one vehicle per trip

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 08:49:46.441516
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bookings",
        sa.Column("trip_id", sa.Uuid(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "state IN ('open', 'released', 'cancelled', 'completed')",
            name=op.f("ck_bookings_state"),
        ),
        sa.PrimaryKeyConstraint("trip_id", name=op.f("pk_bookings")),
        schema="vehicle",
    )
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.String(length=200), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("handled_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id", name=op.f("pk_inbox")),
        schema="vehicle",
    )
    op.create_index(
        op.f("ix_inbox_handled_at"), "inbox", ["handled_at"], unique=False, schema="vehicle"
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
        schema="vehicle",
    )
    op.create_index(
        "ix_outbox_unpublished",
        "outbox",
        ["next_attempt_at", "created_at"],
        unique=False,
        schema="vehicle",
        postgresql_where=sa.text("published_at IS NULL"),
        sqlite_where=sa.text("published_at IS NULL"),
    )
    op.drop_index(op.f("ix_vehicles_reserved_trip_id"), table_name="vehicles", schema="vehicle")
    op.create_index(
        "ix_vehicles_reserved_trip_id",
        "vehicles",
        ["reserved_trip_id"],
        unique=True,
        schema="vehicle",
    )


def downgrade() -> None:
    op.drop_index("ix_vehicles_reserved_trip_id", table_name="vehicles", schema="vehicle")
    op.create_index(
        op.f("ix_vehicles_reserved_trip_id"),
        "vehicles",
        ["reserved_trip_id"],
        unique=False,
        schema="vehicle",
    )
    op.drop_index(
        "ix_outbox_unpublished",
        table_name="outbox",
        schema="vehicle",
        postgresql_where=sa.text("published_at IS NULL"),
        sqlite_where=sa.text("published_at IS NULL"),
    )
    op.drop_table("outbox", schema="vehicle")
    op.drop_index(op.f("ix_inbox_handled_at"), table_name="inbox", schema="vehicle")
    op.drop_table("inbox", schema="vehicle")
    op.drop_table("bookings", schema="vehicle")
