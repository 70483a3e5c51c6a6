"""The fleet overview operators watch."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .status import TRIP_STATUSES, VehicleStatus


@dataclass(frozen=True, slots=True)
class FleetStatus:
    total: int
    by_status: dict[str, int]
    low_battery: int
    active_trips: int


def summarize(counts: Mapping[VehicleStatus, int], low_battery: int) -> FleetStatus:
    """Counts for every status (zero included), and trips that hold a vehicle."""
    by_status = {s.value: counts.get(s, 0) for s in VehicleStatus}
    return FleetStatus(
        total=sum(by_status.values()),
        by_status=by_status,
        low_battery=low_battery,
        active_trips=sum(counts.get(s, 0) for s in TRIP_STATUSES),
    )
