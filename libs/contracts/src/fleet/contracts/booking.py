"""The trip-booking saga (owned by trip): its definition and its participants' command payloads.

A command's payload is the saga's accumulated data; each class below is the view of that data
its participant needs (unknown keys ignored). A participant replies with a result that is merged
into the saga's data (e.g. `vehicle_id` after `reserve-vehicle`).
"""

from __future__ import annotations

import uuid
from typing import ClassVar

from fleet.common.geo import Point
from fleet.common.messaging import Kind, Message, register

SAGA_NAME = "trip-booking"
REPLY_KEY = "trip.saga-reply"


class _Command(Message):
    kind: ClassVar[Kind] = "command"


@register
class ReserveCredits(_Command):
    """user: hold `fare_cents` of the rider's credits under reference `trip_id`."""

    event_type: ClassVar[str] = "user.reserve-credits"
    trip_id: uuid.UUID
    rider_id: uuid.UUID
    fare_cents: int


@register
class ReleaseCredits(_Command):
    """user: release the hold of `trip_id` (idempotent; unknown reference = nothing to do)."""

    event_type: ClassVar[str] = "user.release-credits"
    trip_id: uuid.UUID
    rider_id: uuid.UUID


@register
class ReserveVehicle(_Command):
    """vehicle: reserve the requested vehicle, or the nearest available one to `pickup`.

    Result: vehicle_id, vehicle_model.
    """

    event_type: ClassVar[str] = "vehicle.reserve-vehicle"
    trip_id: uuid.UUID
    pickup: Point
    requested_vehicle_id: uuid.UUID | None = None


@register
class ReleaseVehicle(_Command):
    """vehicle: free the vehicle reserved for `trip_id`, if any."""

    event_type: ClassVar[str] = "vehicle.release-vehicle"
    trip_id: uuid.UUID


@register
class SendConfirmation(_Command):
    """user: notify the rider that the trip is confirmed."""

    event_type: ClassVar[str] = "user.send-confirmation"
    trip_id: uuid.UUID
    rider_id: uuid.UUID
    vehicle_id: uuid.UUID
    fare_cents: int


@register
class SendCancellation(_Command):
    """user: notify the rider that the booking was cancelled (compensation)."""

    event_type: ClassVar[str] = "user.send-cancellation"
    trip_id: uuid.UUID
    rider_id: uuid.UUID


# The saga as data, like the seed's trip-booking-saga.yml. `quote-fare` and `create-trip` are
# local to trip (no broker round trip): the fare comes from trip's replica of billing's tariffs
# (`events.TariffChanged`, priced with `fares.quote`); its result is fare_cents, distance_km and
# duration_min.
DEFINITION = {
    "name": SAGA_NAME,
    "steps": [
        {"name": "quote-fare", "action": "trip.quote-fare", "local": True},
        {
            "name": "reserve-credits",
            "action": ReserveCredits.event_type,
            "compensation": ReleaseCredits.event_type,
            "timeout_s": 5,
        },
        {
            "name": "reserve-vehicle",
            "action": ReserveVehicle.event_type,
            "compensation": ReleaseVehicle.event_type,
            "timeout_s": 5,
        },
        {
            "name": "create-trip",
            "action": "trip.create-trip",
            "compensation": "trip.cancel-trip",
            "local": True,
        },
        {
            "name": "send-confirmation",
            "action": SendConfirmation.event_type,
            "compensation": SendCancellation.event_type,
            "timeout_s": 5,
        },
    ],
}
