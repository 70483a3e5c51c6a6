"""The Trip aggregate and its state machine: pure rules, no I/O.

pending → confirmed → in_progress → completed; pending → rejected (with a reason);
confirmed → cancelled. Any other move raises `InvalidTransition`.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

MAX_REASON_LENGTH = 500
# A ride longer than this is a measuring error; billing refuses such a trip for good (its own
# limits are wider), so it must never be accepted as completed.
MAX_DISTANCE_KM = 2_000.0
MAX_DURATION_MIN = 24 * 60.0


class TripStatus(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


ALLOWED_TRANSITIONS: dict[TripStatus, frozenset[TripStatus]] = {
    TripStatus.PENDING: frozenset({TripStatus.CONFIRMED, TripStatus.REJECTED}),
    TripStatus.CONFIRMED: frozenset({TripStatus.IN_PROGRESS, TripStatus.CANCELLED}),
    TripStatus.IN_PROGRESS: frozenset({TripStatus.COMPLETED}),
    TripStatus.COMPLETED: frozenset(),
    TripStatus.REJECTED: frozenset(),
    TripStatus.CANCELLED: frozenset(),
}


class TripError(Exception):
    """Base of the trip domain's errors (the service layer maps them to problem documents)."""


class InvalidTransition(TripError):
    """The trip's current status does not allow the requested move (HTTP 409)."""

    def __init__(self, trip_id: uuid.UUID, current: TripStatus, target: TripStatus) -> None:
        super().__init__(f"trip {trip_id} is {current.value}; it cannot become {target.value}")
        self.trip_id = trip_id
        self.current = current
        self.target = target


class StaleTrip(TripError):
    """Someone else saved the trip since it was read (optimistic concurrency, HTTP 409)."""

    def __init__(self, trip_id: uuid.UUID, version: int) -> None:
        super().__init__(f"trip {trip_id} changed since version {version} was read")
        self.trip_id = trip_id
        self.version = version


class InvalidTripData(TripError):
    """A value breaks a trip rule (negative distance, empty reason …) (HTTP 422)."""

    def __init__(self, detail: str, *, field: str) -> None:
        super().__init__(detail)
        self.field = field


@dataclass(frozen=True, slots=True)
class Move:
    """A change of a trip decided without reading it: the status it may start from and the
    fields it sets. `Trip.apply` makes it on a loaded trip; a repository may write it in one
    guarded statement instead (the booking saga's hot path)."""

    source: TripStatus
    values: Mapping[str, Any]

    @property
    def target(self) -> TripStatus:
        status = self.values.get("status", self.source)
        return TripStatus(status)


def assignment(
    vehicle_id: uuid.UUID, vehicle_model: str | None, fare_cents: int, at: dt.datetime
) -> Move:
    """The booking saga holds credits and a vehicle for a pending trip (it stays pending)."""
    if fare_cents < 0:
        raise InvalidTripData("quoted fare cannot be negative", field="quoted_fare_cents")
    values = {
        "vehicle_id": vehicle_id,
        "vehicle_model": vehicle_model,
        "quoted_fare_cents": fare_cents,
        "updated_at": at,
    }
    return Move(TripStatus.PENDING, values)


def confirmation(vehicle_id: uuid.UUID, at: dt.datetime) -> Move:
    """The saga reserved credits and a vehicle: the pending trip is booked."""
    values = {
        "status": TripStatus.CONFIRMED,
        "vehicle_id": vehicle_id,
        "confirmed_at": at,
        "updated_at": at,
    }
    return Move(TripStatus.PENDING, values)


@dataclass(frozen=True, slots=True)
class Location:
    lat: float
    lon: float


@dataclass(slots=True)
class Trip:
    """A ride of one rider; `version` is the stored version the entity was read at."""

    id: uuid.UUID
    rider_id: uuid.UUID
    pickup: Location
    dropoff: Location
    quoted_fare_cents: int | None
    created_at: dt.datetime
    updated_at: dt.datetime
    status: TripStatus = TripStatus.PENDING
    vehicle_id: uuid.UUID | None = None
    vehicle_model: str | None = None
    saga_id: uuid.UUID | None = None
    idempotency_key: str | None = None
    request_hash: str | None = None
    fare_cents: int | None = None
    distance_km: float | None = None
    duration_min: float | None = None
    rejection_reason: str | None = None
    confirmed_at: dt.datetime | None = None
    started_at: dt.datetime | None = None
    completed_at: dt.datetime | None = None
    cancelled_at: dt.datetime | None = None
    version: int = field(default=1)

    @classmethod
    def request(
        cls,
        *,
        rider_id: uuid.UUID,
        pickup: Location,
        dropoff: Location,
        at: dt.datetime,
        quoted_fare_cents: int | None = None,
        trip_id: uuid.UUID | None = None,
        vehicle_id: uuid.UUID | None = None,
        saga_id: uuid.UUID | None = None,
        idempotency_key: str | None = None,
        request_hash: str | None = None,
    ) -> Trip:
        """A new trip, pending until the booking saga confirms or rejects it."""
        if quoted_fare_cents is not None and quoted_fare_cents < 0:
            raise InvalidTripData("quoted fare cannot be negative", field="quoted_fare_cents")
        return cls(
            id=trip_id or uuid.uuid4(),
            rider_id=rider_id,
            pickup=pickup,
            dropoff=dropoff,
            quoted_fare_cents=quoted_fare_cents,
            created_at=at,
            updated_at=at,
            vehicle_id=vehicle_id,
            saga_id=saga_id,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
        )

    @property
    def is_final(self) -> bool:
        return not ALLOWED_TRANSITIONS[self.status]

    def can_become(self, target: TripStatus) -> bool:
        return target in ALLOWED_TRANSITIONS[self.status]

    def _move(self, target: TripStatus, at: dt.datetime) -> None:
        if not self.can_become(target):
            raise InvalidTransition(self.id, self.status, target)
        self.status = target
        self.updated_at = at

    def assign(
        self, vehicle_id: uuid.UUID, vehicle_model: str | None, fare_cents: int, at: dt.datetime
    ) -> None:
        """The booking saga holds credits and a vehicle for this pending trip."""
        self.apply(assignment(vehicle_id, vehicle_model, fare_cents, at))

    def unassign(self, at: dt.datetime) -> None:
        """Compensation of `assign`: the vehicle is no longer the trip's (still pending)."""
        if self.status is TripStatus.PENDING:
            self.vehicle_id = None
            self.vehicle_model = None
            self.updated_at = at

    def confirm(self, vehicle_id: uuid.UUID, at: dt.datetime) -> None:
        """The saga reserved credits and a vehicle: the trip is booked."""
        self.apply(confirmation(vehicle_id, at))

    def apply(self, move: Move) -> None:
        """Make `move`, if the trip is in the status it starts from."""
        if self.status is not move.source:
            raise InvalidTransition(self.id, self.status, move.target)
        for name, value in move.values.items():
            setattr(self, name, value)

    def reject(self, reason: str, at: dt.datetime) -> None:
        """The booking failed; the reason is kept for the rider."""
        reason = reason.strip()
        if not reason:
            raise InvalidTripData("a rejection needs a reason", field="rejection_reason")
        self._move(TripStatus.REJECTED, at)
        self.rejection_reason = reason[:MAX_REASON_LENGTH]

    def start(self, at: dt.datetime) -> None:
        self._move(TripStatus.IN_PROGRESS, at)
        self.started_at = at

    def complete(
        self,
        distance_km: float,
        duration_min: float,
        at: dt.datetime,
        fare_cents: int | None = None,
    ) -> None:
        """The ride ended; the fare may come later, from billing."""
        _check_range("distance_km", distance_km, MAX_DISTANCE_KM, "km")
        _check_range("duration_min", duration_min, MAX_DURATION_MIN, "min")
        if fare_cents is not None and fare_cents < 0:
            raise InvalidTripData("fare cannot be negative", field="fare_cents")
        self._move(TripStatus.COMPLETED, at)
        self.distance_km = distance_km
        self.duration_min = duration_min
        self.fare_cents = fare_cents
        self.completed_at = at

    def cancel(self, at: dt.datetime) -> None:
        self._move(TripStatus.CANCELLED, at)
        self.cancelled_at = at


def _check_range(name: str, value: float, limit: float, unit: str) -> None:
    if not math.isfinite(value) or not 0 <= value <= limit:
        raise InvalidTripData(
            f"{name} must be between 0 and {limit:g} {unit}, got {value:g}", field=name
        )
