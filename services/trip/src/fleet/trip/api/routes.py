"""Route estimation."""

from __future__ import annotations

from fastapi import APIRouter

from fleet.common.auth import CurrentPrincipal
from fleet.common.flags import FeatureFlags
from fleet.trip.api.deps import RuntimeDep
from fleet.trip.api.schemas import RouteIn, RouteOut
from fleet.trip.domain.routes import estimate_route
from fleet.trip.flags import ROUTE_ESTIMATOR_V2

router = APIRouter(prefix="/routes", tags=["trip"])


@router.post("", summary="Distance, duration and polyline of a ride from pickup to dropoff")
async def plan_route(body: RouteIn, who: CurrentPrincipal, rt: RuntimeDep) -> RouteOut:
    flags: FeatureFlags = rt.extras["flags"]
    route = estimate_route(
        body.pickup.location(),
        body.dropoff.location(),
        road_aware=flags.is_enabled(ROUTE_ESTIMATOR_V2, who.user_id),
    )
    return RouteOut(
        distance_km=route.distance_km,
        duration_min=route.duration_min,
        polyline=route.polyline,
        estimator=route.estimator,
    )
