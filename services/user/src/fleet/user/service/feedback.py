"""Use cases: riders rate their own trips, once per trip."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.exc import IntegrityError

from fleet.common.app import not_found
from fleet.common.db import Database
from fleet.common.errors import ConflictError, ServiceUnavailableError
from fleet.user.adapters.notifications import SqlFeedbackRepository
from fleet.user.service.trips import TripDirectory, TripsUnavailable


async def give_feedback(
    db: Database,
    trips: TripDirectory,
    rider_id: uuid.UUID,
    trip_id: uuid.UUID,
    rating: int,
    comment: str | None,
    *,
    authorization: str | None,
) -> Any:
    """Store the rider's rating of one of their trips (any status: the contract does not ask
    for a completed one). 404 if the trip is unknown or another rider's, 503 if the trip
    service cannot tell, 409 if the rider already rated it."""
    await _check_rider_owns(trips, rider_id, trip_id, authorization)
    try:
        async with db.transaction() as session:
            return await SqlFeedbackRepository(session).add(rider_id, trip_id, rating, comment)
    except IntegrityError as exc:
        raise ConflictError(f"feedback for trip {trip_id} was already given") from exc


async def _check_rider_owns(
    trips: TripDirectory, rider_id: uuid.UUID, trip_id: uuid.UUID, authorization: str | None
) -> None:
    try:
        owner = await trips.rider_of(trip_id, authorization)
    except TripsUnavailable as exc:
        raise ServiceUnavailableError(
            f"feedback cannot be checked now: the trip service did not answer for trip {trip_id};"
            " try again later",
            upstream="trip",
        ) from exc
    # Another rider's trip is as missing as an unknown one: nobody learns which ids exist.
    if owner != rider_id:
        raise not_found("trip", trip_id)
