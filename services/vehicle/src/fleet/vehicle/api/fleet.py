"""Fleet overview route."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter

from fleet.common.auth import OperatorPrincipal
from fleet.vehicle.api.deps import DbDep
from fleet.vehicle.api.schemas import FleetStatusOut
from fleet.vehicle.service.fleet import fleet_status

router = APIRouter(prefix="/fleet", tags=["fleet"])


@router.get("/status", summary="Vehicles by status, low-battery count and active trips")
async def get_fleet_status(db: DbDep, _op: OperatorPrincipal) -> FleetStatusOut:
    return FleetStatusOut(**asdict(await fleet_status(db)))
