"""Use cases: riders rate their trips, once per trip."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.exc import IntegrityError

from fleet.common.db import Database
from fleet.common.errors import ConflictError
from fleet.user.adapters.notifications import SqlFeedbackRepository


async def give_feedback(
    db: Database, rider_id: uuid.UUID, trip_id: uuid.UUID, rating: int, comment: str | None
) -> Any:
    """Store the rider's rating of a trip; 409 if they already rated it."""
    try:
        async with db.transaction() as session:
            return await SqlFeedbackRepository(session).add(rider_id, trip_id, rating, comment)
    except IntegrityError as exc:
        raise ConflictError(f"feedback for trip {trip_id} was already given") from exc
