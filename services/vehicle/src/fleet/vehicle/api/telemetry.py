"""Telemetry routes: vehicles report readings, anyone reads the latest position."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, status

from fleet.common.app import runtime
from fleet.common.auth import CurrentPrincipal
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
    responses={503: {"description": "Telemetry buffer full or service stopping (problem+json)"}},
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


@router.get(
    "/{vehicle_id}/location",
    summary="The vehicle's latest known position (served through the L1/L2 cache)",
)
async def get_location(
    vehicle_id: uuid.UUID, request: Request, _who: CurrentPrincipal
) -> LocationOut:
    # The runtime from the request rather than one more dependency: this is the hottest read
    # of the platform, and FastAPI spends ~8 µs solving each dependency.
    rt = runtime(request, SERVICE)
    loc = await uc.get_location(rt.db, vehicle_id, location_cache_of(rt))
    loc = pipeline_of(rt).fresher(loc)
    return LocationOut(
        vehicle_id=loc.vehicle_id, lat=loc.lat, lon=loc.lon, recorded_at=loc.recorded_at
    )
