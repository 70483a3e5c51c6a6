"""Use cases driven by messages: invoice a completed trip, apply the outcome of its payment.

Both run inside the consumer's transaction (`session`) and put their events in the outbox there,
so an invoice and the message announcing it commit together. They return what happened, for
metrics the caller records once the transaction has committed.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from fleet.billing.adapters.repository import SqlInvoiceRepository, SqlPaymentRepository
from fleet.billing.domain.invoices import InvoiceStatus, RideMeasures, after_capture, failure_reason
from fleet.billing.domain.payments import PaymentStatus
from fleet.billing.service.tariffs import tariff_in
from fleet.common.db import utcnow
from fleet.common.logging import get_logger
from fleet.common.messaging import Envelope, Message
from fleet.common.runtime import ServiceRuntime
from fleet.contracts.events import (
    CreditsCaptured,
    CreditsCaptureFailed,
    InvoiceFailed,
    InvoiceIssued,
    InvoicePaid,
    TripCompleted,
)

log = get_logger("fleet.billing")


class UnknownInvoice(LookupError):
    """A payment outcome for an invoice billing never issued: retried, then dead-lettered."""


@dataclass(frozen=True)
class Issued:
    invoice_id: uuid.UUID
    amount_cents: int


@dataclass(frozen=True)
class Settled:
    invoice_id: uuid.UUID
    status: InvoiceStatus
    reason: str | None
    seconds: float  # from the invoice's issue to this outcome


async def issue_invoice(
    rt: ServiceRuntime, session: AsyncSession, trip: TripCompleted, cause: Envelope
) -> Issued | None:
    """Invoice `trip` with its vehicle model's tariff; None if the trip was invoiced already.

    Raises `InvalidRide` for measures no ride can have.
    """
    ride = RideMeasures(trip.distance_km, trip.duration_min)
    tariff = await tariff_in(session, trip.vehicle_model)
    amount = tariff.fare_cents(ride.distance_km, ride.duration_min)
    invoice_id, now = uuid.uuid4(), utcnow()
    inserted = await SqlInvoiceRepository(session).add_once(
        {
            "id": invoice_id,
            "trip_id": trip.trip_id,
            "rider_id": trip.rider_id,
            "amount_cents": amount,
            "status": InvoiceStatus.ISSUED.value,
            "failure_reason": None,
            "distance_km": ride.distance_km,
            "duration_min": ride.duration_min,
            "created_at": now,
            "updated_at": now,
        }
    )
    if not inserted:
        # The same trip announced again under a new event id: its invoice stands.
        log.info("trip already invoiced", trip_id=str(trip.trip_id))
        return None
    event = InvoiceIssued(
        invoice_id=invoice_id, trip_id=trip.trip_id, rider_id=trip.rider_id, amount_cents=amount
    )
    await _announce(rt, session, event, invoice_id, version=1, cause=cause)
    return Issued(invoice_id, amount)


async def record_capture(
    rt: ServiceRuntime,
    session: AsyncSession,
    outcome: CreditsCaptured | CreditsCaptureFailed,
    cause: Envelope,
) -> Settled | None:
    """Mark the invoice paid or failed; None when the outcome changes nothing (paid is final)."""
    invoices = SqlInvoiceRepository(session)
    invoice = await invoices.get_for_update(outcome.invoice_id)
    if invoice is None:
        raise UnknownInvoice(f"invoice {outcome.invoice_id} does not exist")
    captured = isinstance(outcome, CreditsCaptured)
    status = after_capture(InvoiceStatus(invoice.status), captured)
    if status is None:
        log.info("payment outcome ignored", invoice_id=str(invoice.id), status=invoice.status)
        return None
    reason = None if isinstance(outcome, CreditsCaptured) else failure_reason(outcome.reason)
    await invoices.set_status(invoice.id, status.value, reason)
    payment = PaymentStatus.CAPTURED if captured else PaymentStatus.FAILED
    attempt = await SqlPaymentRepository(session).record(invoice.id, payment.value, reason)
    ids = {
        "invoice_id": invoice.id,
        "trip_id": invoice.trip_id,
        "rider_id": invoice.rider_id,
        "amount_cents": invoice.amount_cents,
    }
    event = InvoicePaid(**ids) if reason is None else InvoiceFailed(**ids, reason=reason)
    # Version 1 is the issue; each applied payment outcome is the next version of the invoice.
    await _announce(rt, session, event, invoice.id, version=attempt + 1, cause=cause)
    return Settled(invoice.id, status, reason, _since(invoice.created_at))


async def _announce(
    rt: ServiceRuntime,
    session: AsyncSession,
    event: Message,
    invoice_id: uuid.UUID,
    *,
    version: int,
    cause: Envelope,
) -> None:
    await rt.publish(
        session,
        event,
        aggregate_type="invoice",
        aggregate_id=invoice_id,
        version=version,
        causation=cause,
    )


def _since(moment: dt.datetime) -> float:
    return (utcnow() - moment).total_seconds()
