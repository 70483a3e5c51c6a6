"""Dependency aliases of the trip API."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from fleet.common.app import runtime, upstream
from fleet.common.db import Database
from fleet.common.runtime import ServiceRuntime
from fleet.trip.adapters.vehicles import HttpVehicleDirectory
from fleet.trip.service.booking import Booking
from fleet.trip.service.vehicles import VehicleDirectory

SERVICE = "trip"


async def get_runtime(request: Request) -> ServiceRuntime:
    return runtime(request, SERVICE)


async def get_db(request: Request) -> Database:
    return runtime(request, SERVICE).db


async def get_booking(request: Request) -> Booking:
    booking: Booking = runtime(request, SERVICE).extras["booking"]
    return booking


async def get_vehicles(request: Request) -> VehicleDirectory:
    return HttpVehicleDirectory(upstream(request, "vehicle"))


DbDep = Annotated[Database, Depends(get_db)]
RuntimeDep = Annotated[ServiceRuntime, Depends(get_runtime)]
BookingDep = Annotated[Booking, Depends(get_booking)]
VehiclesDep = Annotated[VehicleDirectory, Depends(get_vehicles)]
