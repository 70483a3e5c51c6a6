"""The trip and tracking repositories, on SQLite and on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from fleet.common import migrations
from fleet.common.db import Database
from fleet.common.pagination import PageParams, paginate
from fleet.common.testing import MakeDb
from fleet.trip.adapters.repository import SqlTrackingRepository, SqlTripRepository
from fleet.trip.app import module
from fleet.trip.domain.tracking import TrackingPoint
from fleet.trip.domain.trips import (
    StaleTrip,
    Trip,
    TripStatus,
    assignment,
    confirmation,
)

T0 = dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.UTC)
BuildTrip = Callable[..., Trip]  # the `build_trip` fixture


async def add(db: Database, *trips: Trip) -> None:
    async with db.transaction() as s:
        for trip in trips:
            await SqlTripRepository(s).add(trip)


async def read_back(db: Database, trip_id: uuid.UUID) -> Trip:
    async with db.session() as s:
        stored = await SqlTripRepository(s).get(trip_id)
    assert stored is not None
    return stored


async def all_pages(db: Database, limit: int, **filters: object) -> list[list[Trip]]:
    pages: list[list[Trip]] = []
    cursor: str | None = None
    while True:
        page = PageParams(limit, cursor)
        async with db.session() as s:
            rows = await SqlTripRepository(s).list(page, **filters)  # type: ignore[arg-type]
        chunk, cursor = paginate(rows, limit, key=lambda t: (t.created_at, t.id))
        pages.append(chunk)
        if cursor is None:
            return pages


async def test_a_stored_trip_reads_back_identical(make_db: MakeDb, build_trip: BuildTrip) -> None:
    db = await make_db(module())
    trip = build_trip(
        status=TripStatus.COMPLETED,
        saga_id=uuid.uuid4(),
        idempotency_key="key-1",
        request_hash="a" * 64,
    )
    await add(db, trip)
    async with db.session() as s:
        assert await SqlTripRepository(s).get(trip.id) == trip
        assert await SqlTripRepository(s).get(uuid.uuid4()) is None


async def test_sql_metacharacters_in_a_reason_are_stored_verbatim(
    make_db: MakeDb, build_trip: BuildTrip
) -> None:
    db = await make_db(module())
    trip = build_trip()
    reason = "'; DROP TABLE trip.trips; -- \" % _ \\"
    trip.reject(reason, T0)
    await add(db, trip)
    async with db.session() as s:
        stored = await SqlTripRepository(s).get(trip.id)
    assert stored is not None
    assert stored.rejection_reason == reason.strip()


async def test_a_trip_is_found_by_its_riders_idempotency_key(
    make_db: MakeDb, build_trip: BuildTrip
) -> None:
    db = await make_db(module())
    rider = uuid.uuid4()
    trip = build_trip(rider, idempotency_key="retry-me")
    await add(db, trip, build_trip(uuid.uuid4(), idempotency_key="retry-me"))
    async with db.session() as s:
        repo = SqlTripRepository(s)
        assert await repo.get_by_idempotency_key(rider, "retry-me") == trip
        assert await repo.get_by_idempotency_key(rider, "other") is None


async def test_one_rider_cannot_reuse_an_idempotency_key(
    make_db: MakeDb, build_trip: BuildTrip
) -> None:
    db = await make_db(module())
    rider = uuid.uuid4()
    await add(db, build_trip(rider, idempotency_key="k"), build_trip(rider))
    with pytest.raises(IntegrityError):
        await add(db, build_trip(rider, idempotency_key="k"))
    # Trips without a key never collide.
    await add(db, build_trip(rider))


async def test_save_writes_the_transition_and_bumps_the_version(
    make_db: MakeDb, build_trip: BuildTrip
) -> None:
    db = await make_db(module())
    trip = build_trip()
    await add(db, trip)
    vehicle = uuid.uuid4()
    async with db.transaction() as s:
        repo = SqlTripRepository(s)
        loaded = await repo.get(trip.id)
        assert loaded is not None
        loaded.confirm(vehicle, T0 + dt.timedelta(seconds=3))
        await repo.save(loaded)
    assert loaded.version == 2
    stored = await read_back(db, trip.id)
    assert stored == loaded
    assert (stored.status, stored.vehicle_id, stored.version) == (
        TripStatus.CONFIRMED,
        vehicle,
        2,
    )


async def test_a_move_written_in_one_statement_equals_the_move_made_on_the_loaded_trip(
    make_db: MakeDb, build_trip: BuildTrip
) -> None:
    db = await make_db(module())
    trip = build_trip(saga_id=uuid.uuid4())
    await add(db, trip)
    vehicle = uuid.uuid4()
    moves = [
        assignment(vehicle, "Model Y", 720, T0 + dt.timedelta(seconds=1)),
        confirmation(vehicle, T0 + dt.timedelta(seconds=2)),
    ]
    expected = build_trip(saga_id=trip.saga_id, trip_id=trip.id, rider_id=trip.rider_id)
    for move in moves:
        async with db.transaction() as s:
            written = await SqlTripRepository(s).apply(trip.id, move)
        expected.apply(move)
        expected.version += 1
        assert written == expected
    stored = await read_back(db, trip.id)
    assert stored == expected
    assert (stored.status, stored.quoted_fare_cents, stored.version) == (
        TripStatus.CONFIRMED,
        720,
        3,
    )


async def test_a_move_from_another_status_or_of_a_missing_trip_writes_nothing(
    make_db: MakeDb, build_trip: BuildTrip
) -> None:
    db = await make_db(module())
    trip = build_trip(status=TripStatus.REJECTED)
    await add(db, trip)
    async with db.transaction() as s:
        repo = SqlTripRepository(s)
        assert await repo.apply(trip.id, confirmation(uuid.uuid4(), T0)) is None
        assert await repo.apply(uuid.uuid4(), confirmation(uuid.uuid4(), T0)) is None
    async with db.session() as s:
        assert await SqlTripRepository(s).get(trip.id) == trip


async def test_a_stale_save_is_refused_and_keeps_the_winners_change(
    make_db: MakeDb, build_trip: BuildTrip
) -> None:
    db = await make_db(module())
    trip = build_trip()
    await add(db, trip)
    async with db.session() as s:
        first = await SqlTripRepository(s).get(trip.id)
        second = await SqlTripRepository(s).get(trip.id)
    assert first is not None
    assert second is not None
    first.confirm(uuid.uuid4(), T0)
    async with db.transaction() as s:
        await SqlTripRepository(s).save(first)
    second.reject("no vehicle", T0)
    with pytest.raises(StaleTrip):
        async with db.transaction() as s:
            await SqlTripRepository(s).save(second)
    assert second.version == 1
    async with db.session() as s:
        stored = await SqlTripRepository(s).get(trip.id)
    assert stored is not None
    assert (stored.status, stored.rejection_reason, stored.version) == (
        TripStatus.CONFIRMED,
        None,
        2,
    )


async def test_saving_a_trip_that_was_never_stored_is_refused(
    make_db: MakeDb, build_trip: BuildTrip
) -> None:
    db = await make_db(module())
    with pytest.raises(StaleTrip):
        async with db.transaction() as s:
            await SqlTripRepository(s).save(build_trip())


async def test_listing_pages_newest_first_without_gaps_or_duplicates(
    make_db: MakeDb, build_trip: BuildTrip
) -> None:
    db = await make_db(module())
    rider = uuid.uuid4()
    # Four trips share one timestamp so the id tie-break is exercised too.
    stamps = [T0 + dt.timedelta(minutes=i) for i in range(3)] + [T0 + dt.timedelta(hours=1)] * 4
    trips = [build_trip(rider, created_at=when) for when in stamps]
    await add(db, *trips, build_trip(uuid.uuid4()))
    pages = await all_pages(db, 3, rider_id=rider)
    assert [len(p) for p in pages] == [3, 3, 1]
    seen = [t.id for page in pages for t in page]
    expected = sorted(trips, key=lambda t: (t.created_at, t.id), reverse=True)
    assert seen == [t.id for t in expected]


async def test_listing_filters_by_rider_and_status(make_db: MakeDb, build_trip: BuildTrip) -> None:
    db = await make_db(module())
    rider, other = uuid.uuid4(), uuid.uuid4()
    mine_done = build_trip(rider, status=TripStatus.COMPLETED)
    mine_pending = build_trip(rider, created_at=T0 + dt.timedelta(minutes=1))
    theirs_done = build_trip(other, status=TripStatus.COMPLETED)
    await add(db, mine_done, mine_pending, theirs_done)
    page = PageParams(50, None)
    async with db.session() as s:
        repo = SqlTripRepository(s)
        mine = await repo.list(page, rider_id=rider)
        done = await repo.list(page, status=TripStatus.COMPLETED)
        mine_and_done = await repo.list(page, rider_id=rider, status=TripStatus.COMPLETED)
        everything = await repo.list(page)
    assert [t.id for t in mine] == [mine_pending.id, mine_done.id]
    assert {t.id for t in done} == {mine_done.id, theirs_done.id}
    assert [t.id for t in mine_and_done] == [mine_done.id]
    assert len(everything) == 3


def point(trip: Trip, seconds: int, **kwargs: object) -> TrackingPoint:
    return TrackingPoint(
        trip_id=trip.id,
        vehicle_id=trip.vehicle_id or uuid.uuid4(),
        lat=37.5 + seconds / 10_000,
        lon=127.0,
        recorded_at=T0 + dt.timedelta(seconds=seconds),
        **kwargs,  # type: ignore[arg-type]
    )


async def test_tracking_lists_a_trips_points_oldest_first_across_pages(
    make_db: MakeDb, build_trip: BuildTrip
) -> None:
    db = await make_db(module())
    trip, other = build_trip(status=TripStatus.IN_PROGRESS), build_trip()
    await add(db, trip, other)
    points = [point(trip, s, speed_kph=float(s)) for s in (50, 10, 40, 20, 30)]
    points.append(point(trip, 30))  # same instant as another point: the id breaks the tie
    async with db.transaction() as s:
        await SqlTrackingRepository(s).add(points)
        await SqlTrackingRepository(s).add([point(other, 5)])
        await SqlTrackingRepository(s).add([])
    seen: list[TrackingPoint] = []
    cursor: str | None = None
    while True:
        async with db.session() as s:
            rows = await SqlTrackingRepository(s).list(trip.id, PageParams(4, cursor))
        chunk, cursor = paginate(rows, 4, key=lambda p: (p.recorded_at, p.id))
        seen.extend(chunk)
        if cursor is None:
            break
    assert seen == sorted(points, key=lambda p: (p.recorded_at, p.id))


async def test_tracking_points_must_belong_to_a_stored_trip(
    make_db: MakeDb, build_trip: BuildTrip
) -> None:
    db = await make_db(module())
    with pytest.raises(IntegrityError):
        async with db.transaction() as s:
            await SqlTrackingRepository(s).add([point(build_trip(), 1)])


async def test_migration_builds_the_seed_index_newest_first_and_rolls_back(
    make_db: MakeDb,
) -> None:
    db = await make_db(module())
    query = (
        "SELECT sql FROM sqlite_master WHERE name = :name"
        if db.is_sqlite
        else "SELECT indexdef FROM pg_indexes WHERE indexname = :name"
    )
    async with db.session() as s:
        ddl = (await s.execute(text(query), {"name": "ix_trips_rider_status_created"})).scalar()
    assert ddl is not None
    assert "rider_id, status, created_at DESC, id DESC" in ddl
    await migrations.downgrade(db, module().migrations)
    assert await migrations.current_revision(db) is None
    await migrations.upgrade(db, module().migrations)
    assert await migrations.current_revision(db) == "0004"


async def test_migration_indexes_trips_by_vehicle_and_status_for_tracking(
    make_db: MakeDb,
) -> None:
    db = await make_db(module())
    query = (
        "SELECT sql FROM sqlite_master WHERE name = :name"
        if db.is_sqlite
        else "SELECT indexdef FROM pg_indexes WHERE indexname = :name"
    )
    async with db.session() as s:
        ddl = (await s.execute(text(query), {"name": "ix_trips_vehicle_status"})).scalar()
    assert ddl is not None
    assert "vehicle_id, status" in ddl
