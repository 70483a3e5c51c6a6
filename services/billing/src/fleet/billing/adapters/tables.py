"""The billing schema's tables."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
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

SCHEMA = "billing"
metadata = service_metadata(SCHEMA)

tariffs = Table(
    "tariffs",
    metadata,
    Column("vehicle_model", String(64), primary_key=True),
    Column("base_cents", Integer, nullable=False),
    Column("per_km_cents", Integer, nullable=False),
    Column("per_min_cents", Integer, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # +1 on every change of the model's tariff: the order of its `billing.tariff-changed` events.
    Column("version", Integer, nullable=False, server_default="1"),
)

invoices = Table(
    "invoices",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("trip_id", Uuid, nullable=False, unique=True),
    Column("rider_id", Uuid, nullable=False),
    Column("amount_cents", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("failure_reason", String(500)),
    Column("distance_km", Float),
    Column("duration_min", Float),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)
Index("ix_invoices_rider_created", invoices.c.rider_id, invoices.c.created_at.desc(), invoices.c.id)

# One row per capture outcome applied to an invoice: the invoice keeps the latest state, this
# keeps the history (a failure followed by a successful retry shows as two attempts).
payments = Table(
    "payments",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("invoice_id", Uuid, ForeignKey(invoices.c.id, ondelete="CASCADE"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("error", String(500)),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("invoice_id", "attempt"),
)

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
