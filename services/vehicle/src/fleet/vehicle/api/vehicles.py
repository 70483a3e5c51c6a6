"""Vehicle routes: register, list, read and edit vehicles."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query, status

from fleet.common.auth import CurrentPrincipal, OperatorPrincipal, Principal
from fleet.common.openapi import Responses
from fleet.common.pagination import Page, PageDep, page_of
from fleet.vehicle.api.deps import DbDep, NearDep
from fleet.vehicle.api.schemas import VehicleCreated, VehicleIn, VehicleOut, VehiclePatch
from fleet.vehicle.api.telemetry import TelemetryDep
from fleet.vehicle.domain.status import VehicleStatus
from fleet.vehicle.domain.vehicles import Vehicle
from fleet.vehicle.service import vehicles as uc

router = APIRouter(prefix="/vehicles", tags=["vehicles"])

UNKNOWN: Responses = {404: {"description": "Unknown vehicle"}}


def vehicle_out(vehicle: Vehicle, who: Principal) -> VehicleOut:
    out = VehicleOut.model_validate(asdict(vehicle))
    # Which trip holds a vehicle is the trip owner's business and the operators'.
    if not who.is_operator:
        out.reserved_trip_id = None
    return out


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Register a vehicle (the answer carries its one-time device token)",
    responses={409: {"description": "The VIN is already registered"}},
)
async def register_vehicle(body: VehicleIn, db: DbDep, _op: OperatorPrincipal) -> VehicleCreated:
    vehicle, token = await uc.register_vehicle(db, uc.NewVehicle(**body.model_dump()))
    return VehicleCreated(**asdict(vehicle), device_token=token)


@router.get("", summary="Vehicles, newest first; optionally by status and around a point")
async def list_vehicles(
    db: DbDep,
    who: CurrentPrincipal,
    page: PageDep,
    area: NearDep,
    status: Annotated[VehicleStatus | None, Query()] = None,
) -> Page[VehicleOut]:
    rows = await uc.list_vehicles(db, status, area, page)
    return page_of(rows, page, lambda v: vehicle_out(v, who), key=lambda v: (v.created_at, v.id))


@router.get("/{vehicle_id}", summary="One vehicle", responses=UNKNOWN)
async def get_vehicle(
    vehicle_id: uuid.UUID, db: DbDep, who: CurrentPrincipal, telemetry: TelemetryDep
) -> VehicleOut:
    # Telemetry accepted but not yet stored still shows: readers see what was acknowledged.
    return vehicle_out(telemetry.overlay(await uc.get_vehicle(db, vehicle_id)), who)


@router.patch(
    "/{vehicle_id}",
    summary="Change status (available, maintenance, offline), model or seats",
    description="409 while the vehicle is reserved or on a trip.",
    responses={**UNKNOWN, 409: {"description": "The vehicle is reserved or on a trip"}},
)
async def update_vehicle(
    vehicle_id: uuid.UUID, body: VehiclePatch, db: DbDep, op: OperatorPrincipal
) -> VehicleOut:
    changes = uc.VehicleChanges(
        status=VehicleStatus(body.status) if body.status else None,
        model=body.model,
        seats=body.seats,
    )
    return vehicle_out(await uc.update_vehicle(db, vehicle_id, changes), op)
