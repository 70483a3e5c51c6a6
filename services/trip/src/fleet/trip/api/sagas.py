"""Saga inspection and the operators' analytics read model."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from fleet.common.auth import CurrentPrincipal, OperatorPrincipal
from fleet.common.saga import Phase, SagaInstance, StepRecord
from fleet.trip.api.deps import DbDep, RuntimeDep
from fleet.trip.api.schemas import DailyTripsOut, SagaOut, SagaStepOut
from fleet.trip.service import analytics
from fleet.trip.service.sagas import get_saga

router = APIRouter(tags=["trip"])


def _order(step: StepRecord) -> int:
    return -step.idx if step.phase is Phase.COMPENSATION else step.idx


def _out(saga: SagaInstance) -> SagaOut:
    # Actions in order, then compensations in the (reverse) order they run.
    steps = sorted(saga.steps, key=lambda s: (s.phase is Phase.COMPENSATION, _order(s)))
    current = next((s.name for s in saga.steps if s.idx == saga.current_step), None)
    trip_id = saga.data.get("trip_id")
    return SagaOut(
        id=saga.id,
        name=saga.name,
        status=saga.status.value,
        trip_id=uuid.UUID(trip_id) if trip_id else None,
        current_step=None if saga.status.is_final else current,
        error=saga.error,
        created_at=saga.created_at,
        updated_at=saga.updated_at,
        steps=[
            SagaStepOut(
                name=s.name,
                phase=s.phase.value,
                status=s.status.value,
                attempts=s.attempts,
                started_at=s.started_at,
                finished_at=s.finished_at,
                error=s.error,
            )
            for s in steps
        ],
    )


@router.get(
    "/sagas/{saga_id}",
    summary="A booking saga: status and every step",
    responses={404: {"description": "No such saga, or another rider's"}},
)
async def saga(saga_id: uuid.UUID, rt: RuntimeDep, who: CurrentPrincipal) -> SagaOut:
    return _out(await get_saga(rt, who, saga_id))


@router.get("/analytics/trips/daily", summary="Completed trips and revenue per day (operator)")
async def daily_trips(
    db: DbDep,
    _op: OperatorPrincipal,
    days: Annotated[int, Query(ge=1, le=366)] = 30,
) -> list[DailyTripsOut]:
    today = dt.datetime.now(dt.UTC).date()
    rows = await analytics.daily(db, today - dt.timedelta(days=days - 1), today)
    return [DailyTripsOut(**vars(r)) for r in rows]
