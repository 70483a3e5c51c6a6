"""The vehicle aggregate: operator status changes, the trip life cycle and position updates.

Every method returns whether it changed the vehicle, so a repeated command (a redelivered saga
message) is a harmless no-op and the caller knows it has nothing to save.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from dataclasses import dataclass

from fleet.common.errors import ConflictError, InvalidInputError

from .status import OPERATOR_STATUSES, TRIP_STATUSES, VehicleStatus
from .telemetry import Reading


class VehicleUnavailableError(ConflictError):
    """The vehicle's status does not allow what was asked (it is busy or out of service)."""


class NoVehicleAvailableError(ConflictError):
    """No available vehicle is close enough to the pickup point."""


class TripClosedError(ConflictError):
    """The trip's booking is already over (released, cancelled or completed) for the vehicles."""


@dataclass(slots=True)
class Vehicle:
    id: uuid.UUID
    vin: str
    model: str
    seats: int
    status: VehicleStatus
    battery_pct: float
    lat: float
    lon: float
    odometer_km: float
    created_at: dt.datetime
    updated_at: dt.datetime
    position_recorded_at: dt.datetime | None = None
    reserved_trip_id: uuid.UUID | None = None
    version: int = 1

    def _on_trip(self, trip_id: uuid.UUID, *statuses: VehicleStatus) -> bool:
        return self.reserved_trip_id == trip_id and self.status in statuses

    def set_status(self, status: VehicleStatus) -> bool:
        """An operator's change: only to available/maintenance/offline, never during a trip."""
        if status not in OPERATOR_STATUSES:
            raise InvalidInputError(
                f"status {status.value!r} is set by bookings, not by hand", field="status"
            )
        if self.status in TRIP_STATUSES:
            raise VehicleUnavailableError(
                f"vehicle {self.id} is {self.status.value}; wait until its trip ends"
            )
        if status == self.status:
            return False
        self.status = status
        return True

    def reserve(self, trip_id: uuid.UUID) -> bool:
        """Hold the vehicle for a trip; repeating it for the same trip changes nothing."""
        if self._on_trip(trip_id, *TRIP_STATUSES):
            return False
        if self.status != VehicleStatus.AVAILABLE:
            raise VehicleUnavailableError(f"vehicle {self.id} is {self.status.value}")
        self.status = VehicleStatus.RESERVED
        self.reserved_trip_id = trip_id
        return True

    def release(self, trip_id: uuid.UUID) -> bool:
        """Undo `reserve` (saga compensation); a vehicle held for another trip stays held."""
        if not self._on_trip(trip_id, VehicleStatus.RESERVED):
            return False
        self.status = VehicleStatus.AVAILABLE
        self.reserved_trip_id = None
        return True

    def cancel_trip(self, trip_id: uuid.UUID) -> bool:
        """Free the vehicle of a cancelled trip, reserved or under way; no mileage is added."""
        if not self._on_trip(trip_id, *TRIP_STATUSES):
            return False
        self.status = VehicleStatus.AVAILABLE
        self.reserved_trip_id = None
        return True

    def start_trip(self, trip_id: uuid.UUID) -> bool:
        if self._on_trip(trip_id, VehicleStatus.IN_TRIP):
            return False
        if not self._on_trip(trip_id, VehicleStatus.RESERVED):
            raise VehicleUnavailableError(f"vehicle {self.id} is not reserved for trip {trip_id}")
        self.status = VehicleStatus.IN_TRIP
        return True

    def complete_trip(self, trip_id: uuid.UUID, distance_km: float) -> bool:
        """Free the vehicle and add the trip's distance; a repeated completion adds nothing.

        A vehicle still `reserved` may complete too: events of one trip can overtake each other,
        and the completion is what matters for mileage and availability.
        """
        if not math.isfinite(distance_km) or distance_km < 0:
            raise InvalidInputError("distance_km must not be negative", field="distance_km")
        if not self._on_trip(trip_id, *TRIP_STATUSES):
            return False
        self.status = VehicleStatus.AVAILABLE
        self.reserved_trip_id = None
        self.odometer_km = round(self.odometer_km + distance_km, 3)
        return True

    def apply_reading(self, reading: Reading) -> bool:
        """Move to the reading's position unless a newer one is already known."""
        known = self.position_recorded_at
        if known is not None and reading.recorded_at <= known:
            return False
        self.lat, self.lon = reading.lat, reading.lon
        self.battery_pct = reading.battery_pct
        self.position_recorded_at = reading.recorded_at
        return True
