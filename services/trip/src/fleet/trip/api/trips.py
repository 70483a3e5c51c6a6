"""Trip reads: riders see their own trips, operators all. Booking arrives with the saga."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from fleet.common.auth import CurrentPrincipal
from fleet.common.pagination import Page, PageDep, page_of
from fleet.trip.api.deps import DbDep
from fleet.trip.api.schemas import TrackingPointOut, TripOut
from fleet.trip.domain.tracking import TrackingPoint
from fleet.trip.domain.trips import TripStatus
from fleet.trip.service import trips as uc

router = APIRouter(prefix="/trips", tags=["trip"])


def _point(p: TrackingPoint) -> TrackingPointOut:
    return TrackingPointOut(
        vehicle_id=p.vehicle_id,
        lat=p.lat,
        lon=p.lon,
        speed_kph=p.speed_kph,
        recorded_at=p.recorded_at,
    )


@router.get("", summary="Trips, newest first (riders: their own)")
async def list_trips(
    db: DbDep, who: CurrentPrincipal, page: PageDep, status: TripStatus | None = None
) -> Page[TripOut]:
    trips = await uc.list_trips(db, who, page, status)
    return page_of(trips, page, TripOut.of, key=lambda t: (t.created_at, t.id))


@router.get("/{trip_id}", summary="One trip (404 if it is someone else's)")
async def get_trip(trip_id: uuid.UUID, db: DbDep, who: CurrentPrincipal) -> TripOut:
    return TripOut.of(await uc.get_trip(db, who, trip_id))


@router.get("/{trip_id}/tracking", summary="The vehicle's positions during the trip, oldest first")
async def get_tracking(
    trip_id: uuid.UUID, db: DbDep, who: CurrentPrincipal, page: PageDep
) -> Page[TrackingPointOut]:
    points = await uc.trip_tracking(db, who, trip_id, page)
    return page_of(points, page, _point, key=lambda p: (p.recorded_at, p.id))
