"""Route estimation."""

from __future__ import annotations

from fastapi import APIRouter

from fleet.common.auth import CurrentPrincipal
from fleet.trip.api.schemas import RouteIn, RouteOut
from fleet.trip.domain.routes import estimate_route

router = APIRouter(prefix="/routes", tags=["trip"])


@router.post("", summary="Distance, duration and polyline of a ride from pickup to dropoff")
async def plan_route(body: RouteIn, _who: CurrentPrincipal) -> RouteOut:
    route = estimate_route(body.pickup.location(), body.dropoff.location())
    return RouteOut(
        distance_km=route.distance_km, duration_min=route.duration_min, polyline=route.polyline
    )
