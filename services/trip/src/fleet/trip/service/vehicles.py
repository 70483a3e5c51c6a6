"""The vehicle behind a trip, read synchronously from the vehicle service (a read path only:
never inside a saga step, where the bus carries the conversation)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class VehicleDetails:
    id: uuid.UUID
    model: str
    status: str
    lat: float
    lon: float


@dataclass(frozen=True)
class VehicleLookup:
    """What the trip can say about its vehicle. `unavailable`: the vehicle service did not
    answer, and `details` (if any) is the last copy seen."""

    details: VehicleDetails | None
    unavailable: bool = False


NO_VEHICLE = VehicleLookup(None)


class VehicleDirectory(Protocol):
    async def lookup(self, vehicle_id: uuid.UUID, authorization: str | None) -> VehicleLookup:
        """The vehicle's details; never raises because the vehicle service is down."""
        ...
