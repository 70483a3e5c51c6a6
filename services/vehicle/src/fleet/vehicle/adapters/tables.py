"""The vehicle schema's tables."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    SmallInteger,
    String,
    Table,
    Uuid,
    func,
)

from fleet.common.db import UTCDateTime, service_metadata
from fleet.common.outbox import inbox_table, outbox_table

SCHEMA = "vehicle"
metadata = service_metadata(SCHEMA)

vehicles = Table(
    "vehicles",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("vin", String(17), nullable=False, unique=True),
    Column("model", String(64), nullable=False),
    Column("seats", SmallInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("battery_pct", Float, nullable=False),
    Column("lat", Float, nullable=False),
    Column("lon", Float, nullable=False),
    Column("position_recorded_at", UTCDateTime),
    Column("odometer_km", Float, nullable=False),
    Column("reserved_trip_id", Uuid),
    Column("device_token_hash", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    CheckConstraint(
        "status IN ('available', 'reserved', 'in_trip', 'maintenance', 'offline')",
        name="status",
    ),
)
Index("ix_vehicles_status", vehicles.c.status)
Index("ix_vehicles_lat_lon", vehicles.c.lat, vehicles.c.lon)
# PostgreSQL only: the available vehicles' positions in a GiST index, for the nearest-vehicle
# search of a booking (a k-nearest-neighbour bound, then a box; see adapters/vehicles.py).
Index(
    "ix_vehicles_available_position",
    func.point(vehicles.c.lon, vehicles.c.lat),
    postgresql_using="gist",
    postgresql_where=vehicles.c.status == "available",
).ddl_if(dialect="postgresql")
# One vehicle per trip: two deliveries of one booking can never hold two vehicles.
Index("ix_vehicles_reserved_trip_id", vehicles.c.reserved_trip_id, unique=True)
Index("ix_vehicles_created_id", vehicles.c.created_at.desc(), vehicles.c.id)

telemetry = Table(
    "telemetry",
    metadata,
    # SQLite only auto-numbers an INTEGER PRIMARY KEY; PostgreSQL gets a bigint identity.
    Column(
        "id",
        BigInteger().with_variant(Integer, "sqlite"),
        Identity(always=False),
        primary_key=True,
    ),
    Column("vehicle_id", Uuid, ForeignKey("vehicles.id", ondelete="CASCADE"), nullable=False),
    Column("lat", Float, nullable=False),
    Column("lon", Float, nullable=False),
    Column("speed_kph", Float, nullable=False),
    Column("battery_pct", Float, nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
)
Index("ix_telemetry_vehicle_recorded", telemetry.c.vehicle_id, telemetry.c.recorded_at)

diagnostics = Table(
    "diagnostics",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("vehicle_id", Uuid, ForeignKey("vehicles.id", ondelete="CASCADE"), nullable=False),
    Column("code", String(32), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("message", String(2000), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    CheckConstraint("severity IN ('info', 'warning', 'critical')", name="severity"),
)
Index("ix_diagnostics_created_id", diagnostics.c.created_at.desc(), diagnostics.c.id)
Index(
    "ix_diagnostics_vehicle_created",
    diagnostics.c.vehicle_id,
    diagnostics.c.created_at.desc(),
    diagnostics.c.id,
)

# Where each trip's booking stands for this service. Reserving and releasing a trip both lock its
# row, so a reserve-vehicle that arrives late, after its compensation, finds the booking closed
# instead of holding a vehicle that nobody will ever free.
bookings = Table(
    "bookings",
    metadata,
    Column("trip_id", Uuid, primary_key=True),
    Column("state", String(16), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    CheckConstraint("state IN ('open', 'released', 'cancelled', 'completed')", name="state"),
)

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
