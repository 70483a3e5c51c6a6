"""Domain events: facts a service publishes on `fleet.events`, routing key = `event_type`."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from fleet.common.messaging import Message, register


@register
class TripConfirmed(Message):
    event_type: ClassVar[str] = "trip.confirmed"
    trip_id: uuid.UUID
    rider_id: uuid.UUID
    vehicle_id: uuid.UUID
    quoted_fare_cents: int


@register
class TripRejected(Message):
    event_type: ClassVar[str] = "trip.rejected"
    trip_id: uuid.UUID
    rider_id: uuid.UUID
    reason: str


@register
class TripStarted(Message):
    event_type: ClassVar[str] = "trip.started"
    trip_id: uuid.UUID
    rider_id: uuid.UUID
    vehicle_id: uuid.UUID
    started_at: dt.datetime


@register
class TripCompleted(Message):
    """The seed's TripCompleted: vehicle adds mileage, billing charges, analytics counts."""

    event_type: ClassVar[str] = "trip.completed"
    trip_id: uuid.UUID
    rider_id: uuid.UUID
    vehicle_id: uuid.UUID
    vehicle_model: str | None = None
    distance_km: float
    duration_min: float
    quoted_fare_cents: int
    completed_at: dt.datetime


@register
class TripCancelled(Message):
    event_type: ClassVar[str] = "trip.cancelled"
    trip_id: uuid.UUID
    rider_id: uuid.UUID
    vehicle_id: uuid.UUID | None = None
    reason: str


@register
class InvoiceIssued(Message):
    """billing asks user to capture the rider's held credits for this invoice."""

    event_type: ClassVar[str] = "invoice.issued"
    invoice_id: uuid.UUID
    trip_id: uuid.UUID
    rider_id: uuid.UUID
    amount_cents: int


@register
class CreditsCaptured(Message):
    event_type: ClassVar[str] = "credits.captured"
    invoice_id: uuid.UUID
    trip_id: uuid.UUID
    rider_id: uuid.UUID
    amount_cents: int


@register
class CreditsCaptureFailed(Message):
    event_type: ClassVar[str] = "credits.capture-failed"
    invoice_id: uuid.UUID
    trip_id: uuid.UUID
    rider_id: uuid.UUID
    amount_cents: int
    reason: str


@register
class InvoicePaid(Message):
    event_type: ClassVar[str] = "invoice.paid"
    invoice_id: uuid.UUID
    trip_id: uuid.UUID
    rider_id: uuid.UUID
    amount_cents: int


@register
class InvoiceFailed(Message):
    event_type: ClassVar[str] = "invoice.failed"
    invoice_id: uuid.UUID
    trip_id: uuid.UUID
    rider_id: uuid.UUID
    amount_cents: int
    reason: str


@register
class TariffChanged(Message):
    """A vehicle model's tariff as billing now holds it (created, replaced, or re-announced).

    `version` grows by one with every change of the model's tariff: a reader keeps the highest
    version it has seen per model, so redeliveries, re-announcements and late arrivals of older
    versions change nothing. billing re-announces every tariff at start-up and periodically,
    so a new or emptied replica converges (docs/adr/0007-fare-quote-from-replicated-tariffs.md).
    """

    event_type: ClassVar[str] = "billing.tariff-changed"
    vehicle_model: str = Field(min_length=1, max_length=64)
    base_cents: int = Field(ge=0)
    per_km_cents: int = Field(ge=0)
    per_min_cents: int = Field(ge=0)
    version: int = Field(ge=1)
    updated_at: AwareDatetime


# --- Telemetry (vehicle devices → vehicle service → trip tracking) ---------------------------
# Devices publish `vehicle.telemetry` on `fleet.events`, routing key `vehicle.telemetry` or
# `vehicle.telemetry.<vehicle_id>` (both match the vehicle service's binding; the per-vehicle
# key lets a broker policy shard or trace one vehicle). The broker's per-device credentials are
# what authenticates a device on this path; the vehicle must exist.


class TelemetryReading(BaseModel):
    """One position report, as a device sends it (bounds as on POST /vehicles/{id}/telemetry)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    lat: float = Field(ge=-90, le=90, allow_inf_nan=False)
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False)
    speed_kph: float = Field(ge=0, le=300, allow_inf_nan=False)
    battery_pct: float = Field(ge=0, le=100, allow_inf_nan=False)
    recorded_at: AwareDatetime


@register
class VehicleTelemetryReported(Message):
    """A device's readings (1 to 1000), consumed by the vehicle service's `vehicle.telemetry`."""

    event_type: ClassVar[str] = "vehicle.telemetry"
    vehicle_id: uuid.UUID
    readings: list[TelemetryReading] = Field(min_length=1, max_length=1000)


class TripPosition(BaseModel):
    """Where a vehicle held for a trip was; `trip_id` is the vehicle service's view (a hint)."""

    model_config = ConfigDict(frozen=True)

    vehicle_id: uuid.UUID
    trip_id: uuid.UUID | None = None
    lat: float
    lon: float
    speed_kph: float | None = None
    recorded_at: dt.datetime


@register
class VehiclePositionsReported(Message):
    """The readings of one stored telemetry batch whose vehicles are reserved or on a trip.

    One event per batch (not per reading): the trip service keeps the positions of in-progress
    trips as tracking points. Published through the vehicle outbox with the batch's commit.
    """

    event_type: ClassVar[str] = "vehicle.positions"
    positions: list[TripPosition]
