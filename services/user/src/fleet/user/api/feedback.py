"""Riders rate their trips."""

from __future__ import annotations

from fastapi import APIRouter

from fleet.common.auth import RiderPrincipal
from fleet.user.api.deps import DbDep
from fleet.user.api.schemas import FeedbackIn, FeedbackOut
from fleet.user.service import feedback as uc

router = APIRouter(prefix="/feedback", tags=["feedback"])


@router.post(
    "",
    status_code=201,
    summary="Rate a trip (once per trip)",
    responses={409: {"description": "The caller already rated this trip"}},
)
async def give_feedback(body: FeedbackIn, db: DbDep, who: RiderPrincipal) -> FeedbackOut:
    row = await uc.give_feedback(db, who.user_id, body.trip_id, body.rating, body.comment)
    return FeedbackOut.model_validate(row)
