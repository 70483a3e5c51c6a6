"""initial vehicle schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26 08:39:31.701403
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
        "vehicles",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("vin", sa.String(length=17), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("seats", sa.SmallInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("battery_pct", sa.Float(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("position_recorded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("odometer_km", sa.Float(), nullable=False),
        sa.Column("reserved_trip_id", sa.Uuid(), nullable=True),
        sa.Column("device_token_hash", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('available', 'reserved', 'in_trip', 'maintenance', 'offline')",
            name=op.f("ck_vehicles_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vehicles")),
        sa.UniqueConstraint("vin", name=op.f("uq_vehicles_vin")),
        schema="vehicle",
    )
    op.create_index(
        "ix_vehicles_created_id",
        "vehicles",
        [sa.literal_column("created_at DESC"), "id"],
        unique=False,
        schema="vehicle",
    )
    op.create_index(
        "ix_vehicles_lat_lon", "vehicles", ["lat", "lon"], unique=False, schema="vehicle"
    )
    op.create_index(
        "ix_vehicles_reserved_trip_id",
        "vehicles",
        ["reserved_trip_id"],
        unique=False,
        schema="vehicle",
    )
    op.create_index("ix_vehicles_status", "vehicles", ["status"], unique=False, schema="vehicle")
    op.create_table(
        "diagnostics",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("vehicle_id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("message", sa.String(length=2000), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "severity IN ('info', 'warning', 'critical')", name=op.f("ck_diagnostics_severity")
        ),
        sa.ForeignKeyConstraint(
            ["vehicle_id"],
            ["vehicle.vehicles.id"],
            name=op.f("fk_diagnostics_vehicle_id_vehicles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_diagnostics")),
        schema="vehicle",
    )
    op.create_index(
        "ix_diagnostics_created_id",
        "diagnostics",
        [sa.literal_column("created_at DESC"), "id"],
        unique=False,
        schema="vehicle",
    )
    op.create_index(
        "ix_diagnostics_vehicle_created",
        "diagnostics",
        ["vehicle_id", sa.literal_column("created_at DESC"), "id"],
        unique=False,
        schema="vehicle",
    )
    op.create_table(
        "telemetry",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.Identity(always=False),
            nullable=False,
        ),
        sa.Column("vehicle_id", sa.Uuid(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("speed_kph", sa.Float(), nullable=False),
        sa.Column("battery_pct", sa.Float(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["vehicle_id"],
            ["vehicle.vehicles.id"],
            name=op.f("fk_telemetry_vehicle_id_vehicles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_telemetry")),
        schema="vehicle",
    )
    op.create_index(
        "ix_telemetry_vehicle_recorded",
        "telemetry",
        ["vehicle_id", "recorded_at"],
        unique=False,
        schema="vehicle",
    )


def downgrade() -> None:
    op.drop_index("ix_telemetry_vehicle_recorded", table_name="telemetry", schema="vehicle")
    op.drop_table("telemetry", schema="vehicle")
    op.drop_index("ix_diagnostics_vehicle_created", table_name="diagnostics", schema="vehicle")
    op.drop_index("ix_diagnostics_created_id", table_name="diagnostics", schema="vehicle")
    op.drop_table("diagnostics", schema="vehicle")
    op.drop_index("ix_vehicles_status", table_name="vehicles", schema="vehicle")
    op.drop_index("ix_vehicles_reserved_trip_id", table_name="vehicles", schema="vehicle")
    op.drop_index("ix_vehicles_lat_lon", table_name="vehicles", schema="vehicle")
    op.drop_index("ix_vehicles_created_id", table_name="vehicles", schema="vehicle")
    op.drop_table("vehicles", schema="vehicle")
