"""Service use cases against a real database, on SQLite and on PostgreSQL (`make_db`)."""

from __future__ import annotations

import datetime as dt
import random
import string
import uuid

import pytest

from fleet.common import migrations
from fleet.common.db import Database, utcnow
from fleet.common.errors import ConflictError, NotFoundError, UnauthorizedError
from fleet.common.pagination import PageParams, encode_cursor
from fleet.common.testing import MakeDb, recorded_statements
from fleet.vehicle.adapters.bookings import SqlBookings
from fleet.vehicle.adapters.vehicles import SqlVehicleRepository, StaleVehicleError
from fleet.vehicle.app import module
from fleet.vehicle.domain.search import Circle
from fleet.vehicle.domain.status import VehicleStatus
from fleet.vehicle.domain.telemetry import Reading
from fleet.vehicle.domain.vehicles import NoVehicleAvailableError, TripClosedError, Vehicle
from fleet.vehicle.service import reservations as rs
from fleet.vehicle.service import telemetry as tm
from fleet.vehicle.service import vehicles as vs
from fleet.vehicle.service.fleet import fleet_status

S = VehicleStatus
BERLIN = (52.52, 13.405)
ALPHABET = "".join(c for c in string.ascii_uppercase + string.digits if c not in "IOQ")


def _vin() -> str:
    return "".join(random.choices(ALPHABET, k=17))


async def _add(
    db: Database, lat: float = BERLIN[0], lon: float = BERLIN[1], **kw: object
) -> Vehicle:
    new = vs.NewVehicle(vin=_vin(), model="Robo-1", seats=4, lat=lat, lon=lon, **kw)  # type: ignore[arg-type]
    vehicle, _token = await vs.register_vehicle(db, new)
    return vehicle


async def test_vehicle_round_trips_through_the_repository(make_db: MakeDb) -> None:
    db = await make_db(module())
    v = await _add(db)
    loaded = await vs.get_vehicle(db, v.id)
    assert loaded == v
    assert loaded.status == S.AVAILABLE
    assert loaded.version == 1
    assert loaded.created_at.tzinfo is not None


async def test_duplicate_vin_is_a_conflict(make_db: MakeDb) -> None:
    db = await make_db(module())
    v = await _add(db)
    with pytest.raises(ConflictError):
        await vs.register_vehicle(db, vs.NewVehicle(v.vin.lower(), "X", 2, 0.0, 0.0))


async def test_full_trip_cycle_updates_status_and_odometer(make_db: MakeDb) -> None:
    db = await make_db(module())
    v = await _add(db)
    trip = uuid.uuid4()
    assert (await rs.reserve_vehicle(db, v.id, trip)).status == S.RESERVED
    assert (await rs.reserve_vehicle(db, v.id, trip)).version == 2  # idempotent: no new version
    assert (await rs.start_trip(db, v.id, trip)).status == S.IN_TRIP
    done = await rs.complete_trip(db, v.id, trip, 7.25)
    assert (done.status, done.reserved_trip_id, done.odometer_km) == (S.AVAILABLE, None, 7.25)
    again = await rs.complete_trip(db, v.id, trip, 7.25)
    stored = await vs.get_vehicle(db, v.id)
    assert again.odometer_km == stored.odometer_km == 7.25
    assert stored.version == 4


async def test_reserve_of_a_busy_vehicle_for_another_trip_is_refused(make_db: MakeDb) -> None:
    db = await make_db(module())
    v = await _add(db)
    first = uuid.uuid4()
    await rs.reserve_vehicle(db, v.id, first)
    with pytest.raises(ConflictError):
        await rs.reserve_vehicle(db, v.id, uuid.uuid4())
    assert (await vs.get_vehicle(db, v.id)).reserved_trip_id == first


async def test_release_frees_only_the_reserving_trip(make_db: MakeDb) -> None:
    db = await make_db(module())
    v = await _add(db)
    trip = uuid.uuid4()
    await rs.reserve_vehicle(db, v.id, trip)
    await rs.release_vehicle(db, v.id, uuid.uuid4())
    assert (await vs.get_vehicle(db, v.id)).status == S.RESERVED
    await rs.release_vehicle(db, v.id, trip)
    assert (await vs.get_vehicle(db, v.id)).status == S.AVAILABLE


async def test_release_by_trip_frees_the_vehicle_it_holds(make_db: MakeDb) -> None:
    db = await make_db(module())
    v = await _add(db)
    other = await _add(db)
    trip = uuid.uuid4()
    await rs.reserve_vehicle(db, v.id, trip)
    await rs.reserve_vehicle(db, other.id, uuid.uuid4())
    released = await rs.release_trip(db, trip)
    assert released is not None
    assert (released.id, released.status) == (v.id, S.AVAILABLE)
    assert await rs.release_trip(db, trip) is None
    assert (await vs.get_vehicle(db, other.id)).status == S.RESERVED


async def test_maintenance_vehicle_cannot_be_reserved(make_db: MakeDb) -> None:
    db = await make_db(module())
    v = await _add(db)
    await vs.update_vehicle(db, v.id, vs.VehicleChanges(status=S.MAINTENANCE))
    with pytest.raises(ConflictError):
        await rs.reserve_vehicle(db, v.id, uuid.uuid4())


async def test_reserving_a_missing_vehicle_is_not_found(make_db: MakeDb) -> None:
    db = await make_db(module())
    with pytest.raises(NotFoundError):
        await rs.reserve_vehicle(db, uuid.uuid4(), uuid.uuid4())


async def test_saving_a_stale_copy_is_refused(make_db: MakeDb) -> None:
    db = await make_db(module())
    v = await _add(db)
    stale = await vs.get_vehicle(db, v.id)
    await rs.reserve_vehicle(db, v.id, uuid.uuid4())
    stale.reserve(uuid.uuid4())
    with pytest.raises(StaleVehicleError):
        async with db.transaction() as session:
            await SqlVehicleRepository(session).save(stale)
    assert (await vs.get_vehicle(db, v.id)).version == 2


async def test_nearest_available_ignores_busy_and_far_vehicles(make_db: MakeDb) -> None:
    db = await make_db(module())
    close_busy = await _add(db, 52.5201, 13.405)
    close = await _add(db, 52.525, 13.405)
    await _add(db, 52.60, 13.405)  # ~9 km away
    await rs.reserve_vehicle(db, close_busy.id, uuid.uuid4())
    found = await rs.find_nearest_available(db, Circle(*BERLIN, radius_km=5))
    assert found is not None
    assert found.id == close.id
    assert await rs.find_nearest_available(db, Circle(0.0, 0.0, radius_km=5)) is None


async def test_nearest_available_across_the_antimeridian(make_db: MakeDb) -> None:
    db = await make_db(module())
    east = await _add(db, -16.5, 179.99)
    found = await rs.find_nearest_available(db, Circle(-16.5, -179.99, radius_km=10))
    assert found is not None
    assert found.id == east.id


async def test_reserve_nearest_available_is_idempotent_per_trip(make_db: MakeDb) -> None:
    db = await make_db(module())
    a = await _add(db, 52.521, 13.405)
    b = await _add(db, 52.53, 13.405)
    trip, other = uuid.uuid4(), uuid.uuid4()
    area = Circle(*BERLIN, radius_km=5)
    first = await rs.reserve_nearest_available(db, area, trip)
    assert first is not None
    assert first.id == a.id
    again = await rs.reserve_nearest_available(db, area, trip)
    assert again is not None
    assert again.id == a.id
    second = await rs.reserve_nearest_available(db, area, other)
    assert second is not None
    assert second.id == b.id
    assert await rs.reserve_nearest_available(db, area, uuid.uuid4()) is None


async def test_a_released_trip_cannot_reserve_again(make_db: MakeDb) -> None:
    db = await make_db(module())
    v = await _add(db)
    trip = uuid.uuid4()
    assert await rs.release_trip(db, trip) is None  # the compensation came first
    with pytest.raises(TripClosedError):
        await rs.reserve_vehicle(db, v.id, trip)
    assert await rs.reserve_nearest_available(db, Circle(*BERLIN), uuid.uuid4()) is not None


async def test_booking_a_requested_vehicle_twice_keeps_it(make_db: MakeDb) -> None:
    db = await make_db(module())
    v = await _add(db)
    trip = uuid.uuid4()
    for _ in range(2):
        async with db.transaction() as session:
            got = await rs.book_in(session, trip, Circle(*BERLIN), v.id)
        assert (got.id, got.status, got.version) == (v.id, S.RESERVED, 2)


async def test_cancel_frees_a_vehicle_on_its_way_without_mileage(make_db: MakeDb) -> None:
    db = await make_db(module())
    v = await _add(db)
    trip = uuid.uuid4()
    await rs.reserve_vehicle(db, v.id, trip)
    await rs.start_trip(db, v.id, trip)
    async with db.transaction() as session:
        freed = await rs.cancel_trip_in(session, trip)
        assert await rs.cancel_trip_in(session, trip) is None
    assert freed is not None
    assert (freed.status, freed.reserved_trip_id, freed.odometer_km) == (S.AVAILABLE, None, 0.0)


async def test_listing_near_a_point_pages_through_only_vehicles_inside(make_db: MakeDb) -> None:
    db = await make_db(module())
    inside = {(await _add(db, 52.52 + i * 0.001, 13.405)).id for i in range(5)}
    # corners of the bounding box: inside the box, outside the circle
    for _ in range(4):
        await _add(db, 52.52 + 0.040, 13.405 + 0.070)
    area = Circle(*BERLIN, radius_km=5)
    seen: list[uuid.UUID] = []
    page = PageParams(2, None)
    while True:
        rows = await vs.list_vehicles(db, None, area, page)
        seen += [v.id for v in rows[:2]]
        if len(rows) <= 2:
            break
        page = PageParams(2, encode_cursor(rows[1].created_at, rows[1].id))
    assert len(seen) == 5
    assert set(seen) == inside


async def test_listing_by_status(make_db: MakeDb) -> None:
    db = await make_db(module())
    a = await _add(db)
    await _add(db)
    await rs.reserve_vehicle(db, a.id, uuid.uuid4())
    rows = await vs.list_vehicles(db, S.RESERVED, None, PageParams(50, None))
    assert [v.id for v in rows] == [a.id]


async def test_out_of_order_telemetry_keeps_the_newest_position(make_db: MakeDb) -> None:
    db = await make_db(module())
    v = await _add(db)
    now = utcnow()

    def at(seconds: int, lat: float) -> Reading:
        return Reading(lat, 13.0, 10.0, 50.0, now - dt.timedelta(seconds=seconds))

    assert await tm.record_telemetry(db, v.id, [at(10, 1.0), at(5, 2.0)], None) == 2
    await tm.record_telemetry(db, v.id, [at(60, 9.0)], None)
    loc = await tm.get_location(db, v.id)
    assert loc.lat == 2.0
    assert loc.recorded_at == now - dt.timedelta(seconds=5)


async def test_telemetry_with_a_foreign_device_token_changes_nothing(make_db: MakeDb) -> None:
    db = await make_db(module())
    v = await _add(db)
    _other, other_token = await vs.register_vehicle(
        db, vs.NewVehicle(_vin(), "Robo-1", 4, 1.0, 1.0)
    )
    with pytest.raises(UnauthorizedError):
        await tm.record_telemetry(db, v.id, [Reading(5.0, 5.0, 0.0, 10.0, utcnow())], other_token)
    assert (await tm.get_location(db, v.id)).lat == BERLIN[0]


async def test_fleet_status_counts(make_db: MakeDb) -> None:
    db = await make_db(module())
    a = await _add(db, battery_pct=10.0)
    b = await _add(db)
    await _add(db, battery_pct=19.9)
    await _add(db, battery_pct=20.0)
    await rs.reserve_vehicle(db, a.id, uuid.uuid4())
    trip = uuid.uuid4()
    await rs.reserve_vehicle(db, b.id, trip)
    await rs.start_trip(db, b.id, trip)
    summary = await fleet_status(db)
    assert summary.total == 4
    assert summary.by_status["available"] == 2
    assert summary.low_battery == 2
    assert summary.active_trips == 2


async def test_migrations_go_down_and_up_again(make_db: MakeDb) -> None:
    m = module()
    db = await make_db(m)
    await migrations.downgrade(db, m.migrations)
    assert await migrations.current_revision(db) is None
    await migrations.upgrade(db, m.migrations)
    assert await migrations.current_revision(db) == "0003"
    assert (await _add(db)).version == 1


async def test_opening_a_booking_is_one_statement_that_answers_its_state(make_db: MakeDb) -> None:
    db = await make_db(module())
    fresh, released = uuid.uuid4(), uuid.uuid4()
    await rs.release_trip(db, released)
    postgres = db.engine.dialect.name == "postgresql"
    with recorded_statements(db) as seen:
        async with db.transaction() as session:
            assert await SqlBookings(session).open(fresh) == ("open", postgres)
            assert await SqlBookings(session).open(fresh) == ("open", False)  # opened once, kept
            assert await SqlBookings(session).open(released) == ("released", False)
    assert len(seen) == 3


async def test_booking_a_trip_it_just_opened_skips_the_look_for_a_held_vehicle(
    make_db: MakeDb,
) -> None:
    db = await make_db(module())
    await _add(db)
    trip = uuid.uuid4()
    with recorded_statements(db) as seen:
        async with db.transaction() as session:
            first = await rs.book_in(session, trip, Circle(*BERLIN))
    with recorded_statements(db) as again:
        async with db.transaction() as session:
            second = await rs.book_in(session, trip, Circle(*BERLIN))
    assert second.id == first.id  # the repeat finds the vehicle the trip holds
    looks = [s for s in seen if "RESERVED_TRIP_ID = " in s and s.startswith("SELECT")]
    if db.engine.dialect.name == "postgresql":  # open booking, nearest vehicle, its update
        assert (len(seen), looks) == (3, [])
    else:  # SQLite cannot tell a new booking from an old one: it looks
        assert len(looks) == 1
    assert any("RESERVED_TRIP_ID = " in s and s.startswith("SELECT") for s in again)


async def test_a_refused_saga_booking_closes_the_trip_so_a_late_one_is_refused(
    make_db: MakeDb,
) -> None:
    db = await make_db(module())
    trip = uuid.uuid4()
    async with db.transaction() as session:  # commits the refusal, as the participant does
        with pytest.raises(NoVehicleAvailableError):
            await rs.book_or_close_in(session, trip, Circle(*BERLIN))
    v = await _add(db)
    async with db.transaction() as session:
        with pytest.raises(TripClosedError):
            await rs.book_or_close_in(session, trip, Circle(*BERLIN))
    assert (await vs.get_vehicle(db, v.id)).status == S.AVAILABLE
