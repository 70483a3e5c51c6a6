"""Request and response bodies of the trip API."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from fleet.common.text import MultiLine
from fleet.trip.domain.tracking import TrackingPoint
from fleet.trip.domain.trips import (
    MAX_DISTANCE_KM,
    MAX_DURATION_MIN,
    Location,
    Trip,
    TripStatus,
)
from fleet.trip.service.vehicles import VehicleLookup

# Strict: a quoted number ("45.1") or a boolean is a client bug, not a coordinate.
Latitude = Annotated[float, Field(strict=True, ge=-90, le=90, allow_inf_nan=False)]
Longitude = Annotated[float, Field(strict=True, ge=-180, le=180, allow_inf_nan=False)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PointIn(Strict):
    lat: Latitude
    lon: Longitude

    def location(self) -> Location:
        return Location(self.lat, self.lon)


class RouteIn(Strict):
    pickup: PointIn
    dropoff: PointIn


class RouteOut(BaseModel):
    distance_km: float
    duration_min: float
    polyline: str = Field(description="Google encoded polyline, precision 5")
    estimator: str = Field(
        "straight-line", description="straight-line, or road-aware (flag route_estimator_v2)"
    )


class PointOut(BaseModel):
    lat: float
    lon: float


class TripOut(BaseModel):
    id: uuid.UUID
    rider_id: uuid.UUID
    vehicle_id: uuid.UUID | None
    status: TripStatus
    pickup: PointOut
    dropoff: PointOut
    quoted_fare_cents: int | None
    fare_cents: int | None
    distance_km: float | None
    duration_min: float | None
    saga_id: uuid.UUID | None
    rejection_reason: str | None
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime
    confirmed_at: dt.datetime | None
    started_at: dt.datetime | None
    completed_at: dt.datetime | None
    cancelled_at: dt.datetime | None

    @classmethod
    def of(cls, trip: Trip) -> TripOut:
        return cls(
            id=trip.id,
            rider_id=trip.rider_id,
            vehicle_id=trip.vehicle_id,
            status=trip.status,
            pickup=PointOut(lat=trip.pickup.lat, lon=trip.pickup.lon),
            dropoff=PointOut(lat=trip.dropoff.lat, lon=trip.dropoff.lon),
            quoted_fare_cents=trip.quoted_fare_cents,
            fare_cents=trip.fare_cents,
            distance_km=trip.distance_km,
            duration_min=trip.duration_min,
            saga_id=trip.saga_id,
            rejection_reason=trip.rejection_reason,
            version=trip.version,
            created_at=trip.created_at,
            updated_at=trip.updated_at,
            confirmed_at=trip.confirmed_at,
            started_at=trip.started_at,
            completed_at=trip.completed_at,
            cancelled_at=trip.cancelled_at,
        )


class VehicleSummaryOut(BaseModel):
    id: uuid.UUID
    model: str
    status: str
    lat: float
    lon: float


class TripWithVehicleOut(TripOut):
    """A trip; with `?expand=vehicle` also its vehicle, read live from the vehicle service.

    The route serialises with `exclude_unset`: without `expand` the two fields below are absent,
    so every TripOut field must keep being set explicitly in `TripOut.of`.
    """

    vehicle: VehicleSummaryOut | None = Field(
        None, description="with ?expand=vehicle: the vehicle now (or its last known copy)"
    )
    vehicle_unavailable: bool = Field(
        False,
        description="with ?expand=vehicle: true when the vehicle service did not answer; "
        "`vehicle` is then the last copy seen, or null",
    )

    @classmethod
    def expanded(cls, trip: Trip, lookup: VehicleLookup) -> TripWithVehicleOut:
        d = lookup.details
        vehicle = (
            VehicleSummaryOut(id=d.id, model=d.model, status=d.status, lat=d.lat, lon=d.lon)
            if d
            else None
        )
        return cls(
            **TripOut.of(trip).model_dump(),
            vehicle=vehicle,
            vehicle_unavailable=lookup.unavailable,
        )


class TrackingPointOut(BaseModel):
    vehicle_id: uuid.UUID
    lat: float
    lon: float
    speed_kph: float | None
    recorded_at: dt.datetime

    @classmethod
    def of(cls, p: TrackingPoint) -> TrackingPointOut:
        return cls(
            vehicle_id=p.vehicle_id,
            lat=p.lat,
            lon=p.lon,
            speed_kph=p.speed_kph,
            recorded_at=p.recorded_at,
        )


class BookTripIn(Strict):
    pickup: PointIn
    dropoff: PointIn
    vehicle_id: uuid.UUID | None = None


class CompleteTripIn(Strict):
    # Strict like coordinates: `true` or "5" is a client bug, not a distance of 1 or 5 km.
    distance_km: float = Field(strict=True, ge=0, le=MAX_DISTANCE_KM, allow_inf_nan=False)
    duration_min: float | None = Field(
        None, strict=True, ge=0, le=MAX_DURATION_MIN, allow_inf_nan=False
    )


class CancelTripIn(Strict):
    reason: MultiLine | None = Field(None, min_length=1, max_length=500)


class SagaStepOut(BaseModel):
    name: str
    phase: str
    status: str
    attempts: int
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    error: str | None


class SagaOut(BaseModel):
    id: uuid.UUID
    name: str
    status: str
    trip_id: uuid.UUID | None
    current_step: str | None
    error: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    steps: list[SagaStepOut]


class DailyTripsOut(BaseModel):
    day: dt.date
    trips: int
    revenue_cents: int
    avg_distance_km: float
    avg_duration_min: float
