"""Domain events: facts a service publishes on `fleet.events`, routing key = `event_type`."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import ClassVar

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
