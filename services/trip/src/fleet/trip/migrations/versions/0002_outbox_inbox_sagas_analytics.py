"""outbox inbox sagas analytics

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 08:47:43.526922
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
        "inbox",
        sa.Column("consumer", sa.String(length=200), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("handled_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id", name=op.f("pk_inbox")),
        schema="trip",
    )
    op.create_index(
        op.f("ix_inbox_handled_at"), "inbox", ["handled_at"], unique=False, schema="trip"
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
        schema="trip",
    )
    op.create_index(
        "ix_outbox_unpublished",
        "outbox",
        ["next_attempt_at", "created_at"],
        unique=False,
        schema="trip",
        postgresql_where=sa.text("published_at IS NULL"),
        sqlite_where=sa.text("published_at IS NULL"),
    )
    op.create_table(
        "sagas",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("current_step", sa.Integer(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'compensating', 'completed', 'compensated', 'failed')",
            name=op.f("ck_sagas_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sagas")),
        schema="trip",
    )
    op.create_index(
        "ix_sagas_due",
        "sagas",
        ["name", "deadline_at"],
        unique=False,
        schema="trip",
        postgresql_where=sa.text("deadline_at IS NOT NULL"),
        sqlite_where=sa.text("deadline_at IS NOT NULL"),
    )
    op.create_index(
        "ix_sagas_status_updated", "sagas", ["status", "updated_at"], unique=False, schema="trip"
    )
    op.create_table(
        "trip_daily_stats",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("trips_completed", sa.Integer(), nullable=False),
        sa.Column("distance_km_total", sa.Float(), nullable=False),
        sa.Column("duration_min_total", sa.Float(), nullable=False),
        sa.Column("revenue_cents", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_trip_daily_stats")),
        schema="trip",
    )
    op.create_table(
        "saga_steps",
        sa.Column("saga_id", sa.Uuid(), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("phase", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.CheckConstraint("phase IN ('action', 'compensation')", name=op.f("ck_saga_steps_phase")),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'succeeded', 'failed', 'timed_out', 'compensating', 'compensated', 'skipped')",
            name=op.f("ck_saga_steps_status"),
        ),
        sa.ForeignKeyConstraint(
            ["saga_id"],
            ["trip.sagas.id"],
            name=op.f("fk_saga_steps_saga_id_sagas"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("saga_id", "idx", "phase", name=op.f("pk_saga_steps")),
        schema="trip",
    )
    op.create_index("ix_trips_saga_id", "trips", ["saga_id"], unique=False, schema="trip")


def downgrade() -> None:
    op.drop_index("ix_trips_saga_id", table_name="trips", schema="trip")
    op.drop_table("saga_steps", schema="trip")
    op.drop_table("trip_daily_stats", schema="trip")
    op.drop_index("ix_sagas_status_updated", table_name="sagas", schema="trip")
    op.drop_index("ix_sagas_due", table_name="sagas", schema="trip")
    op.drop_table("sagas", schema="trip")
    op.drop_index("ix_outbox_unpublished", table_name="outbox", schema="trip")
    op.drop_table("outbox", schema="trip")
    op.drop_index(op.f("ix_inbox_handled_at"), table_name="inbox", schema="trip")
    op.drop_table("inbox", schema="trip")
