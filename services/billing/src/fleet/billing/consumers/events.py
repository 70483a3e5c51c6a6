"""billing.events: invoice completed trips, settle invoices when the rider's credits move."""

from __future__ import annotations

from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession

from fleet.billing.adapters.metrics import PaymentMetrics
from fleet.billing.domain.invoices import InvalidRide, InvoiceStatus
from fleet.billing.service import billing
from fleet.common.db import after_commit
from fleet.common.messaging import Envelope, MalformedMessage, default_registry
from fleet.common.outbox import InboxHandler
from fleet.common.runtime import ServiceRuntime
from fleet.contracts.events import CreditsCaptured, CreditsCaptureFailed, TripCompleted


def billing_events(rt: ServiceRuntime, metrics: PaymentMetrics) -> InboxHandler:
    """The handler of every event billing consumes, dispatched on the event type.

    Payment metrics count only what committed: they are recorded after the commit.
    """

    async def handle(session: AsyncSession, envelope: Envelope) -> None:
        match envelope.event_type:
            case TripCompleted.event_type:
                await _trip_completed(rt, metrics, session, envelope)
            case CreditsCaptured.event_type | CreditsCaptureFailed.event_type:
                await _capture_outcome(rt, metrics, session, envelope)
            case _:
                raise MalformedMessage(f"billing does not handle {envelope.event_type}")

    return handle


async def _trip_completed(
    rt: ServiceRuntime, metrics: PaymentMetrics, session: AsyncSession, envelope: Envelope
) -> None:
    trip = default_registry.parse_as(envelope, TripCompleted)
    try:
        issued = await billing.issue_invoice(rt, session, trip, envelope)
    except InvalidRide as exc:
        raise MalformedMessage(f"trip {trip.trip_id}: {exc}") from None
    if issued:
        after_commit(session, partial(metrics.attempted, issued.amount_cents))


async def _capture_outcome(
    rt: ServiceRuntime, metrics: PaymentMetrics, session: AsyncSession, envelope: Envelope
) -> None:
    outcome = default_registry.parse(envelope)
    if not isinstance(outcome, CreditsCaptured | CreditsCaptureFailed):
        raise MalformedMessage(f"{envelope.event_type} is not a capture outcome")
    settled = await billing.record_capture(rt, session, outcome, envelope)
    if settled is None:
        return
    if settled.status is InvoiceStatus.PAID:
        after_commit(session, partial(metrics.succeeded, settled.seconds))
    else:
        after_commit(session, partial(metrics.failed, settled.reason or "", settled.seconds))
