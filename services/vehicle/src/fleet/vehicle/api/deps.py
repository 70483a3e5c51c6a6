"""Dependency aliases of the vehicle API."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer

from fleet.common.app import runtime
from fleet.common.auth import principal_from, require_operator
from fleet.common.db import Database
from fleet.common.errors import InvalidInputError
from fleet.common.runtime import ServiceRuntime
from fleet.vehicle.adapters.location_cache import EXTRAS_KEY, LocationCache
from fleet.vehicle.domain.search import DEFAULT_RADIUS_KM, MAX_RADIUS_KM, Circle

SERVICE = "vehicle"

_bearer = OAuth2PasswordBearer(tokenUrl="/auth/token", auto_error=False)
_device = APIKeyHeader(
    name="X-Device-Token",
    scheme_name="DeviceToken",
    auto_error=False,
    description="The vehicle's own token, returned once when it was registered.",
)


# Dependencies are `async def`: FastAPI would run a plain `def` in a worker thread (a costly hop).


async def get_db(request: Request) -> Database:
    return runtime(request, SERVICE).db


DbDep = Annotated[Database, Depends(get_db)]


def location_cache_of(rt: ServiceRuntime) -> LocationCache | None:
    located: LocationCache | None = rt.extras.get(EXTRAS_KEY)
    return located


def query_error(field: str, msg: str) -> InvalidInputError:
    """A 422 whose `errors` point at a query parameter rather than the body."""
    err = InvalidInputError(f"{field}: {msg}")
    err.extra["errors"] = [{"loc": ["query", field], "msg": msg}]
    return err


async def telemetry_caller(
    request: Request,
    token: Annotated[str | None, Depends(_bearer)],
    device_token: Annotated[str | None, Depends(_device)],
) -> str | None:
    """The device token to check against the vehicle, or None for a verified operator.

    A device token, when sent, is what authenticates the call: a vehicle never holds a JWT.
    """
    if device_token is not None:
        return device_token
    require_operator(principal_from(request, token))
    return None


TelemetryCaller = Annotated[str | None, Depends(telemetry_caller)]


def _parse_point(near: str) -> tuple[float, float]:
    parts = near.split(",")
    if len(parts) != 2:
        raise query_error("near", "expected `lat,lon`")
    try:
        lat, lon = (float(p) for p in parts)
    except ValueError:
        raise query_error("near", "lat and lon must be numbers") from None
    if not (math.isfinite(lat) and math.isfinite(lon)):
        raise query_error("near", "lat and lon must be finite")
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise query_error("near", "lat must be within ±90 and lon within ±180")
    return lat, lon


async def near_filter(
    near: Annotated[
        str | None, Query(max_length=64, description="`lat,lon`: only vehicles around it")
    ] = None,
    radius_km: Annotated[
        float | None,
        Query(gt=0, le=MAX_RADIUS_KM, description=f"default {DEFAULT_RADIUS_KM} km"),
    ] = None,
) -> Circle | None:
    if near is None:
        if radius_km is not None:
            raise query_error("radius_km", "radius_km needs `near`")
        return None
    lat, lon = _parse_point(near)
    return Circle(lat, lon, DEFAULT_RADIUS_KM if radius_km is None else radius_km)


NearDep = Annotated[Circle | None, Depends(near_filter)]
