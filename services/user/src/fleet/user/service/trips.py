"""The trips riders rate, as the trip service knows them. The user service keeps no copy of trips:
it asks the trip service synchronously (a read; never inside a saga step)."""

from __future__ import annotations

import uuid
from typing import Protocol

from fleet.common.errors import ServiceUnavailableError


class TripsUnavailable(ServiceUnavailableError):
    """The trip service could not say whose a trip is: down, circuit open, 5xx, or an answer
    that makes no sense. Unhandled, it renders as a 503 problem."""


class TripDirectory(Protocol):
    async def rider_of(self, trip_id: uuid.UUID, authorization: str | None) -> uuid.UUID | None:
        """The rider who booked the trip, read with the caller's credentials (`authorization`);
        None if there is no such trip or the caller may not see it. Raises `TripsUnavailable`
        when the trip service cannot tell."""
        ...
