"""Riders rate their own trips."""

from __future__ import annotations

from fastapi import APIRouter, Request

from fleet.common.auth import RiderPrincipal
from fleet.user.api.deps import DbDep, TripsDep
from fleet.user.api.schemas import FeedbackIn, FeedbackOut
from fleet.user.service import feedback as uc

router = APIRouter(prefix="/feedback", tags=["feedback"])


@router.post(
    "",
    status_code=201,
    summary="Rate one of the caller's trips (once per trip)",
    responses={
        404: {"description": "No such trip, or another rider's"},
        409: {"description": "The caller already rated this trip"},
        503: {"description": "The trip service cannot confirm the trip now; nothing was stored"},
    },
)
async def give_feedback(
    body: FeedbackIn, db: DbDep, who: RiderPrincipal, trips: TripsDep, request: Request
) -> FeedbackOut:
    row = await uc.give_feedback(
        db,
        trips,
        who.user_id,
        body.trip_id,
        body.rating,
        body.comment,
        authorization=request.headers.get("authorization"),
    )
    return FeedbackOut.model_validate(row)
