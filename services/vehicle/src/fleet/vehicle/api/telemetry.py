"""Telemetry routes: vehicles report readings, anyone reads the latest position."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status

from fleet.common.app import runtime
from fleet.common.lean import bearer, json_response, lean_get, path_uuid
from fleet.vehicle.api.deps import SERVICE, TelemetryCaller, location_cache_of
from fleet.vehicle.api.schemas import LocationOut, TelemetryAccepted, TelemetryIn
from fleet.vehicle.domain.telemetry import Reading
from fleet.vehicle.service import pipeline
from fleet.vehicle.service import telemetry as uc
from fleet.vehicle.service.pipeline import TelemetryPipeline, pipeline_of

router = APIRouter(prefix="/vehicles", tags=["telemetry"])


async def get_telemetry(request: Request) -> TelemetryPipeline:
    return pipeline_of(runtime(request, SERVICE))


TelemetryDep = Annotated[TelemetryPipeline, Depends(get_telemetry)]


@router.post(
    "/{vehicle_id}/telemetry",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Report one reading or a batch of up to 1000 (operator or the vehicle's device token)",
    description=(
        "202: accepted into the service's write buffer and visible at once in the location; "
        "stored within ~200 ms. 503 (problem+json) while the buffer is full: retry shortly."
    ),
    responses={
        403: {"description": "A bearer token that is not an operator's"},
        404: {"description": "Unknown vehicle"},
        503: {"description": "Telemetry buffer full or service stopping (problem+json)"},
    },
)
async def post_telemetry(
    vehicle_id: uuid.UUID,
    body: TelemetryIn,
    device_token: TelemetryCaller,
    telemetry: TelemetryDep,
) -> TelemetryAccepted:
    readings = [Reading(**r.model_dump()) for r in body.root]
    accepted = await pipeline.accept_telemetry(telemetry, vehicle_id, readings, device_token)
    return TelemetryAccepted(accepted=accepted)


@lean_get(
    router,
    "/{vehicle_id}/location",
    params={"vehicle_id": "uuid"},
    summary="The vehicle's latest known position (served through the L1/L2 cache)",
    response_model=LocationOut,
    responses={
        401: {"description": "Missing or invalid token"},
        404: {"description": "Unknown vehicle"},
    },
)
async def get_location(request: Request) -> Response:
    # The platform's hottest read is a lean route (fleet.common.lean): the same checks and the
    # same answers as a typed route, without FastAPI's per-request dependency solving and
    # response-model pass, which cost more than the read itself (docs/performance.md).
    bearer(request)
    vehicle_id = path_uuid(request, "vehicle_id")
    rt = runtime(request, SERVICE)
    loc = await uc.get_location(rt.db, vehicle_id, location_cache_of(rt))
    loc = pipeline_of(rt).fresher(loc)
    return json_response(
        {
            "vehicle_id": str(loc.vehicle_id),
            "lat": loc.lat,
            "lon": loc.lon,
            "recorded_at": loc.recorded_at,
        }
    )
