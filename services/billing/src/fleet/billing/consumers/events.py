"""billing.events: invoice completed trips, settle invoices when the rider's credits move."""

from __future__ import annotations

from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession

from fleet.billing.adapters.metrics import PaymentMetrics
from fleet.billing.consumers._inbox import AfterCommit, EffectHandler
from fleet.billing.domain.invoices import InvalidRide, InvoiceStatus
from fleet.billing.service import billing
from fleet.common.messaging import Envelope, MalformedMessage, default_registry
from fleet.common.runtime import ServiceRuntime
from fleet.contracts.events import CreditsCaptured, CreditsCaptureFailed, TripCompleted


def billing_events(rt: ServiceRuntime, metrics: PaymentMetrics) -> EffectHandler:
    """The handler of every event billing consumes, dispatched on the event type."""

    async def handle(session: AsyncSession, envelope: Envelope) -> AfterCommit | None:
        match envelope.event_type:
            case TripCompleted.event_type:
                return await _trip_completed(rt, metrics, session, envelope)
            case CreditsCaptured.event_type | CreditsCaptureFailed.event_type:
                return await _capture_outcome(rt, metrics, session, envelope)
        raise MalformedMessage(f"billing does not handle {envelope.event_type}")

    return handle


async def _trip_completed(
    rt: ServiceRuntime, metrics: PaymentMetrics, session: AsyncSession, envelope: Envelope
) -> AfterCommit | None:
    trip = default_registry.parse_as(envelope, TripCompleted)
    try:
        issued = await billing.issue_invoice(rt, session, trip, envelope)
    except InvalidRide as exc:
        raise MalformedMessage(f"trip {trip.trip_id}: {exc}") from None
    return partial(metrics.attempted, issued.amount_cents) if issued else None


async def _capture_outcome(
    rt: ServiceRuntime, metrics: PaymentMetrics, session: AsyncSession, envelope: Envelope
) -> AfterCommit | None:
    outcome = default_registry.parse(envelope)
    if not isinstance(outcome, CreditsCaptured | CreditsCaptureFailed):
        raise MalformedMessage(f"{envelope.event_type} is not a capture outcome")
    settled = await billing.record_capture(rt, session, outcome, envelope)
    if settled is None:
        return None
    if settled.status is InvoiceStatus.PAID:
        return partial(metrics.succeeded, settled.seconds)
    return partial(metrics.failed, settled.reason or "", settled.seconds)
