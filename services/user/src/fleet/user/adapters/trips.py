"""`TripDirectory` over HTTP: `GET /trips/{id}` through the platform's ServiceClient, with the
caller's own credentials, so the trip service applies its access rule (riders see their own)."""

from __future__ import annotations

import uuid
from typing import Any

from fleet.common.errors import ServiceUnavailableError
from fleet.common.http import ServiceClient, UpstreamStatusError
from fleet.common.logging import get_logger
from fleet.user.service.trips import TripsUnavailable

log = get_logger("fleet.user.trips")

# The trip service answers 404 for an unknown trip and for another rider's alike; a 403 would
# also mean "not yours to see".
HIDDEN = frozenset({403, 404})


def _rider(body: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(body["rider_id"]))
    except (KeyError, TypeError, ValueError):
        return None


class HttpTripDirectory:
    """No cache and no fallback: an ownership check is answered by the trip service or not at
    all (a stale "yes" would let a write through on data nobody vouched for)."""

    def __init__(self, client: ServiceClient) -> None:
        self._client = client

    async def rider_of(self, trip_id: uuid.UUID, authorization: str | None) -> uuid.UUID | None:
        try:
            fetched = await self._client.get_json(f"/trips/{trip_id}", authorization=authorization)
        except UpstreamStatusError as exc:
            if exc.status_code in HIDDEN:
                return None
            # 401 or 4xx for a token and id this service accepted: the services disagree (keys,
            # versions); the check cannot be made.
            log.warning("trip service refused", status=exc.status_code, trip_id=trip_id)
            raise TripsUnavailable("the trip service refused the check", upstream="trip") from exc
        except ServiceUnavailableError as exc:
            raise TripsUnavailable(exc.detail, upstream="trip") from exc
        rider = _rider(fetched.value)
        if rider is None:
            log.warning("trip service answered without a rider", trip_id=trip_id)
            raise TripsUnavailable("the trip service answered garbage", upstream="trip")
        return rider
