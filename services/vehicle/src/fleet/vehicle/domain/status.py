"""Vehicle statuses and which of them an operator may set by hand."""

from __future__ import annotations

from enum import StrEnum


class VehicleStatus(StrEnum):
    AVAILABLE = "available"
    RESERVED = "reserved"
    IN_TRIP = "in_trip"
    MAINTENANCE = "maintenance"
    OFFLINE = "offline"


# Statuses owned by the booking saga: only reserve/start/complete/release move into or out of them.
TRIP_STATUSES = frozenset({VehicleStatus.RESERVED, VehicleStatus.IN_TRIP})
OPERATOR_STATUSES = frozenset(
    {VehicleStatus.AVAILABLE, VehicleStatus.MAINTENANCE, VehicleStatus.OFFLINE}
)
LOW_BATTERY_PCT = 20.0
