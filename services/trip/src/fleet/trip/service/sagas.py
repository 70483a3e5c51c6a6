"""Reading a booking saga's state and history (`GET /sagas/{id}`)."""

from __future__ import annotations

import uuid

from fleet.common.app import not_found
from fleet.common.auth import Principal
from fleet.common.runtime import ServiceRuntime
from fleet.common.saga import SagaInstance
from fleet.trip.service.booking import Booking


async def get_saga(rt: ServiceRuntime, who: Principal, saga_id: uuid.UUID) -> SagaInstance:
    """The saga, for operators and for the rider whose trip it books; else 404."""
    booking: Booking = rt.extras["booking"]
    async with rt.db.session() as session:
        saga = await booking.engine.get(session, saga_id)
    if saga is None or not (who.is_operator or saga.data.get("rider_id") == str(who.user_id)):
        raise not_found("saga", saga_id)
    return saga
