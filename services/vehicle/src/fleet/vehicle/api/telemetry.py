"""Telemetry routes: vehicles report readings, anyone reads the latest position."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from fleet.common.auth import CurrentPrincipal
from fleet.vehicle.api.deps import DbDep, TelemetryCaller
from fleet.vehicle.api.schemas import LocationOut, TelemetryAccepted, TelemetryIn
from fleet.vehicle.domain.telemetry import Reading
from fleet.vehicle.service import telemetry as uc

router = APIRouter(prefix="/vehicles", tags=["telemetry"])


@router.post(
    "/{vehicle_id}/telemetry",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Report one reading or a batch of up to 1000 (operator or the vehicle's device token)",
)
async def post_telemetry(
    vehicle_id: uuid.UUID, body: TelemetryIn, db: DbDep, device_token: TelemetryCaller
) -> TelemetryAccepted:
    readings = [Reading(**r.model_dump()) for r in body.root]
    accepted = await uc.record_telemetry(db, vehicle_id, readings, device_token)
    return TelemetryAccepted(accepted=accepted)


@router.get("/{vehicle_id}/location", summary="The vehicle's latest known position")
async def get_location(vehicle_id: uuid.UUID, db: DbDep, _who: CurrentPrincipal) -> LocationOut:
    vehicle = await uc.get_location(db, vehicle_id)
    return LocationOut(
        vehicle_id=vehicle.id,
        lat=vehicle.lat,
        lon=vehicle.lon,
        recorded_at=vehicle.position_recorded_at,
    )
