"""The events the user service reacts to, consumed from `user.events`.

`trip.cancelled` frees the trip's credits and tells the rider; `trip.rejected` tells the rider
why the booking failed. `invoice.issued` charges the
invoice to the trip's hold and answers billing with `credits.captured` or
`credits.capture-failed`, published through the outbox in the transaction of the charge.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from fleet.common.logging import get_logger
from fleet.common.messaging import Envelope, Message, default_registry
from fleet.common.outbox import InboxHandler
from fleet.common.runtime import ServiceRuntime
from fleet.contracts.events import (
    CreditsCaptured,
    CreditsCaptureFailed,
    InvoiceIssued,
    TripCancelled,
    TripRejected,
)
from fleet.user.service import bookings, wallets

log = get_logger("fleet.user.events")


async def trip_cancelled(session: AsyncSession, envelope: Envelope) -> None:
    event = default_registry.parse_as(envelope, TripCancelled)
    await bookings.cancel_trip(session, event.rider_id, event.trip_id, event.reason)


async def trip_rejected(session: AsyncSession, envelope: Envelope) -> None:
    event = default_registry.parse_as(envelope, TripRejected)
    await bookings.booking_rejected(session, event.rider_id, event.trip_id, event.reason)


async def invoice_issued(rt: ServiceRuntime, session: AsyncSession, envelope: Envelope) -> None:
    invoice = default_registry.parse_as(envelope, InvoiceIssued)
    outcome = await wallets.settle_invoice(
        session, invoice.rider_id, invoice.trip_id, invoice.amount_cents
    )
    about = {
        "invoice_id": invoice.invoice_id,
        "trip_id": invoice.trip_id,
        "rider_id": invoice.rider_id,
        "amount_cents": invoice.amount_cents,
    }
    answer: Message
    if outcome.refusal is None:
        answer = CreditsCaptured(**about)
    else:
        log.info("invoice refused", invoice_id=str(invoice.invoice_id), reason=outcome.refusal)
        answer = CreditsCaptureFailed(**about, reason=outcome.refusal)
    await rt.publish(
        session, answer, aggregate_type="wallet", aggregate_id=invoice.rider_id, causation=envelope
    )


def user_events(rt: ServiceRuntime) -> InboxHandler:
    """The inbox handler of `user.events` (one queue, so it dispatches on the event type)."""

    async def handle(session: AsyncSession, envelope: Envelope) -> None:
        if envelope.event_type == TripCancelled.event_type:
            await trip_cancelled(session, envelope)
        elif envelope.event_type == TripRejected.event_type:
            await trip_rejected(session, envelope)
        elif envelope.event_type == InvoiceIssued.event_type:
            await invoice_issued(rt, session, envelope)
        else:
            # Only reachable if the queue's bindings grew before this code did.
            log.warning("event ignored", event_type=envelope.event_type)

    return handle
