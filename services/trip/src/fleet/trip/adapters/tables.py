"""The trip schema's tables."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
    Uuid,
)

from fleet.common.db import UTCDateTime, service_metadata
from fleet.common.outbox import inbox_table, outbox_table
from fleet.common.saga import saga_tables

SCHEMA = "trip"
metadata = service_metadata(SCHEMA)

TRIP_STATUSES = ("pending", "confirmed", "in_progress", "completed", "rejected", "cancelled")

trips = Table(
    "trips",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("rider_id", Uuid, nullable=False),
    Column("vehicle_id", Uuid),
    Column("status", String(16), nullable=False),
    Column("pickup_lat", Float, nullable=False),
    Column("pickup_lon", Float, nullable=False),
    Column("dropoff_lat", Float, nullable=False),
    Column("dropoff_lon", Float, nullable=False),
    # Known once the booking saga's quote-fare step priced the ride.
    Column("quoted_fare_cents", BigInteger),
    Column("vehicle_model", String(64)),
    Column("fare_cents", BigInteger),
    Column("distance_km", Float),
    Column("duration_min", Float),
    Column("saga_id", Uuid),
    Column("rejection_reason", String(500)),
    Column("idempotency_key", String(255)),
    Column("request_hash", String(64)),
    Column("version", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("confirmed_at", UTCDateTime),
    Column("started_at", UTCDateTime),
    Column("completed_at", UTCDateTime),
    Column("cancelled_at", UTCDateTime),
    # Retrying POST /trips with the same Idempotency-Key must find the first trip, per rider.
    UniqueConstraint("rider_id", "idempotency_key"),
    CheckConstraint(
        "status IN ({})".format(", ".join(f"'{s}'" for s in TRIP_STATUSES)), name="status"
    ),
)
# The seed's index for "my trips (in this status), newest first"; id keeps keyset pages exact.
Index(
    "ix_trips_rider_status_created",
    trips.c.rider_id,
    trips.c.status,
    trips.c.created_at.desc(),
    trips.c.id.desc(),
)
# Operators list every trip newest first; a backward scan serves DESC order.
Index("ix_trips_created_id", trips.c.created_at, trips.c.id)

tracking_points = Table(
    "tracking_points",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("trip_id", Uuid, ForeignKey(trips.c.id), nullable=False),
    Column("vehicle_id", Uuid, nullable=False),
    Column("lat", Float, nullable=False),
    Column("lon", Float, nullable=False),
    Column("speed_kph", Float),
    Column("recorded_at", UTCDateTime, nullable=False),
)
Index("ix_trips_saga_id", trips.c.saga_id)
# Telemetry finds the in-progress trip of each reporting vehicle (trip tracking).
Index("ix_trips_vehicle_status", trips.c.vehicle_id, trips.c.status)
Index(
    "ix_tracking_points_trip_recorded",
    tracking_points.c.trip_id,
    tracking_points.c.recorded_at,
    tracking_points.c.id,
)

# CQRS read model for operators: one row per UTC day, fed by trip.completed and invoice.paid.
trip_daily_stats = Table(
    "trip_daily_stats",
    metadata,
    Column("day", Date, primary_key=True),
    Column("trips_completed", Integer, nullable=False),
    Column("distance_km_total", Float, nullable=False),
    Column("duration_min_total", Float, nullable=False),
    Column("revenue_cents", BigInteger, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# trip's replica of billing's tariffs (fed by `billing.tariff-changed`), the newest version per
# model: the booking saga's local quote-fare step prices rides with it.
tariffs = Table(
    "tariffs",
    metadata,
    Column("vehicle_model", String(64), primary_key=True),
    Column("base_cents", Integer, nullable=False),
    Column("per_km_cents", Integer, nullable=False),
    Column("per_min_cents", Integer, nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),  # when billing made this version
)

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
sagas = saga_tables(metadata)
