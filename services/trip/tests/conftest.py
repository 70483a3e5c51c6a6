"""Fixtures of the trip suite: trips built through the domain and stored through the repository.

Booking (POST /trips) arrives with the saga; until then API tests seed trips straight into the
database the app uses.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from fleet.common.db import Database
from fleet.platform.client import Platform
from fleet.trip.adapters.repository import SqlTrackingRepository, SqlTripRepository
from fleet.trip.domain.tracking import TrackingPoint
from fleet.trip.domain.trips import Location, Trip, TripStatus

BuildTrip = Callable[..., Trip]
SeedTrip = Callable[..., Awaitable[Trip]]
SeedTracking = Callable[..., Awaitable[list[TrackingPoint]]]

T0 = dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.UTC)
PICKUP = Location(37.5665, 126.9780)
DROPOFF = Location(37.5512, 126.9882)


def drive_to(trip: Trip, status: TripStatus, at: dt.datetime) -> Trip:
    """Move a pending trip along the allowed path until it reaches `status`."""
    if status is TripStatus.REJECTED:
        trip.reject("no vehicle available", at)
        return trip
    path = {
        TripStatus.PENDING: [],
        TripStatus.CONFIRMED: ["confirm"],
        TripStatus.CANCELLED: ["confirm", "cancel"],
        TripStatus.IN_PROGRESS: ["confirm", "start"],
        TripStatus.COMPLETED: ["confirm", "start", "complete"],
    }[status]
    for step in path:
        if step == "confirm":
            trip.confirm(uuid.uuid4(), at)
        elif step == "start":
            trip.start(at)
        elif step == "complete":
            trip.complete(2.1, 6.5, at, fare_cents=575)
        else:
            trip.cancel(at)
    return trip


@pytest.fixture
def build_trip() -> BuildTrip:
    def build(
        rider_id: uuid.UUID | None = None,
        *,
        status: TripStatus = TripStatus.PENDING,
        created_at: dt.datetime = T0,
        **kwargs: object,
    ) -> Trip:
        trip = Trip.request(
            rider_id=rider_id or uuid.uuid4(),
            pickup=PICKUP,
            dropoff=DROPOFF,
            quoted_fare_cents=650,
            at=created_at,
            **kwargs,  # type: ignore[arg-type]
        )
        return drive_to(trip, status, created_at)

    return build


@pytest.fixture
async def trip_db(client: httpx.AsyncClient, pg_url: str) -> AsyncIterator[Database]:
    """The trip schema of the database the app under test uses (emptied by the `app` fixture)."""
    db = Database(pg_url, "trip")
    yield db
    await db.dispose()


@pytest.fixture
def seed_trip(trip_db: Database, build_trip: BuildTrip) -> SeedTrip:
    async def seed(rider_id: uuid.UUID, **kwargs: object) -> Trip:
        trip = build_trip(rider_id, **kwargs)
        async with trip_db.transaction() as session:
            await SqlTripRepository(session).add(trip)
        return trip

    return seed


@pytest.fixture
def seed_tracking(trip_db: Database) -> SeedTracking:
    """Store `count` positions of the trip's vehicle, inserted in scrambled time order."""

    async def seed(trip: Trip, count: int) -> list[TrackingPoint]:
        vehicle = trip.vehicle_id or uuid.uuid4()
        points = [
            TrackingPoint(
                trip_id=trip.id,
                vehicle_id=vehicle,
                lat=37.56 + i / 1000,
                lon=126.97 + i / 1000,
                speed_kph=20.0 + i,
                recorded_at=T0 + dt.timedelta(seconds=10 * i),
            )
            for i in range(count)
        ]
        scrambled = points[1::2] + points[::2]
        async with trip_db.transaction() as session:
            await SqlTrackingRepository(session).add(scrambled)
        return points

    return seed


@pytest.fixture
def api(client: httpx.AsyncClient) -> Platform:
    """The platform's public API, in-process: the whole app (four services, in-memory bus)."""
    return Platform(client)
