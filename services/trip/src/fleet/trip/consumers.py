"""The trip service's message handlers: saga replies, read models and the tariff replica."""

from __future__ import annotations

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.common.messaging import Envelope, MalformedMessage
from fleet.common.runtime import ServiceRuntime, Subscription
from fleet.common.saga import SagaReply
from fleet.contracts.queues import TRIP_EVENTS, TRIP_SAGA_REPLIES, TRIP_TARIFFS, TRIP_TRACKING
from fleet.trip.service import analytics, fares
from fleet.trip.service.booking import Booking
from fleet.trip.service.tracking import tracking_consumer


def subscriptions(rt: ServiceRuntime) -> list[Subscription]:
    booking: Booking = rt.extras["booking"]
    tariffs: fares.Tariffs = rt.extras[fares.EXTRAS_KEY]

    async def on_saga_reply(session: AsyncSession, envelope: Envelope) -> None:
        try:
            reply = SagaReply.from_dict(envelope.data)
        except ValidationError as exc:
            raise MalformedMessage(f"not a saga reply: {exc.error_count()} errors") from None
        await booking.engine.handle_reply(session, reply)

    return [
        Subscription(
            TRIP_SAGA_REPLIES.name,
            TRIP_SAGA_REPLIES.exchange,
            TRIP_SAGA_REPLIES.bindings,
            rt.consumer("saga-replies", on_saga_reply, hooks=booking.engine.batch_hooks()),
            prefetch=64,
        ),
        Subscription(
            TRIP_EVENTS.name,
            TRIP_EVENTS.exchange,
            TRIP_EVENTS.bindings,
            rt.consumer("analytics", analytics.record),
        ),
        Subscription(
            TRIP_TARIFFS.name,
            TRIP_TARIFFS.exchange,
            TRIP_TARIFFS.bindings,
            rt.consumer("tariffs", tariffs.record),
            prefetch=4,
        ),
        Subscription(
            TRIP_TRACKING.name,
            TRIP_TRACKING.exchange,
            TRIP_TRACKING.bindings,
            tracking_consumer(rt),
            prefetch=64,
        ),
    ]
