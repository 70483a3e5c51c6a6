"""initial trip schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26 08:38:02.475396
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "trips",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("rider_id", sa.Uuid(), nullable=False),
        sa.Column("vehicle_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("pickup_lat", sa.Float(), nullable=False),
        sa.Column("pickup_lon", sa.Float(), nullable=False),
        sa.Column("dropoff_lat", sa.Float(), nullable=False),
        sa.Column("dropoff_lon", sa.Float(), nullable=False),
        sa.Column("quoted_fare_cents", sa.BigInteger(), nullable=True),
        sa.Column("vehicle_model", sa.String(length=64), nullable=True),
        sa.Column("fare_cents", sa.BigInteger(), nullable=True),
        sa.Column("distance_km", sa.Float(), nullable=True),
        sa.Column("duration_min", sa.Float(), nullable=True),
        sa.Column("saga_id", sa.Uuid(), nullable=True),
        sa.Column("rejection_reason", sa.String(length=500), nullable=True),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("request_hash", sa.String(length=64), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'confirmed', 'in_progress', 'completed', 'rejected', 'cancelled')",
            name=op.f("ck_trips_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trips")),
        sa.UniqueConstraint(
            "rider_id", "idempotency_key", name=op.f("uq_trips_rider_id_idempotency_key")
        ),
        schema="trip",
    )
    op.create_index(
        "ix_trips_created_id", "trips", ["created_at", "id"], unique=False, schema="trip"
    )
    op.create_index(
        "ix_trips_rider_status_created",
        "trips",
        ["rider_id", "status", sa.literal_column("created_at DESC"), sa.literal_column("id DESC")],
        unique=False,
        schema="trip",
    )
    op.create_table(
        "tracking_points",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("trip_id", sa.Uuid(), nullable=False),
        sa.Column("vehicle_id", sa.Uuid(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("speed_kph", sa.Float(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["trip_id"], ["trip.trips.id"], name=op.f("fk_tracking_points_trip_id_trips")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracking_points")),
        schema="trip",
    )
    op.create_index(
        "ix_tracking_points_trip_recorded",
        "tracking_points",
        ["trip_id", "recorded_at", "id"],
        unique=False,
        schema="trip",
    )


def downgrade() -> None:
    op.drop_index("ix_tracking_points_trip_recorded", table_name="tracking_points", schema="trip")
    op.drop_table("tracking_points", schema="trip")
    op.drop_index("ix_trips_rider_status_created", table_name="trips", schema="trip")
    op.drop_index("ix_trips_created_id", table_name="trips", schema="trip")
    op.drop_table("trips", schema="trip")
