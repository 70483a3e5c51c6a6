"""`VehicleDirectory` over HTTP: `GET /vehicles/{id}` through the platform's ServiceClient."""

from __future__ import annotations

import uuid
from typing import Any

from fleet.common.http import ServiceClient, UpstreamStatusError
from fleet.common.logging import get_logger
from fleet.trip.service.vehicles import NO_VEHICLE, VehicleDetails, VehicleLookup

log = get_logger("fleet.trip.vehicles")


def _details(body: Any) -> VehicleDetails | None:
    try:
        return VehicleDetails(
            id=uuid.UUID(str(body["id"])),
            model=str(body["model"]),
            status=str(body["status"]),
            lat=float(body["lat"]),
            lon=float(body["lon"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


class HttpVehicleDirectory:
    """Live details when the vehicle service answers; else the last copy seen, else nothing —
    flagged `unavailable` either way, so a trip read never fails because vehicle is down."""

    def __init__(self, client: ServiceClient) -> None:
        self._client = client

    async def lookup(self, vehicle_id: uuid.UUID, authorization: str | None) -> VehicleLookup:
        key = f"vehicle:{vehicle_id}"
        try:
            fetched = await self._client.get_json(
                f"/vehicles/{vehicle_id}",
                authorization=authorization,
                cache_key=key,
                fallback=lambda _exc: None,
            )
        except UpstreamStatusError as exc:
            if exc.status_code == 404:
                self._client.forget(key)
                return NO_VEHICLE
            log.warning("vehicle service refused", status=exc.status_code, vehicle_id=vehicle_id)
            return VehicleLookup(None, unavailable=True)
        return VehicleLookup(_details(fetched.value), unavailable=fetched.degraded)
