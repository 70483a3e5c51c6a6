"""Pure rules of the vehicle domain: no database, no app."""

from __future__ import annotations

import datetime as dt
import re
import uuid

import pytest

from fleet.common.errors import ConflictError, InvalidInputError
from fleet.vehicle.domain.devices import device_token_matches, hash_device_token, new_device_token
from fleet.vehicle.domain.fleet import summarize
from fleet.vehicle.domain.search import Circle, nearest
from fleet.vehicle.domain.status import VehicleStatus
from fleet.vehicle.domain.telemetry import Reading, check_recorded_at, latest
from fleet.vehicle.domain.vehicles import Vehicle
from fleet.vehicle.domain.vin import VIN_PATTERN, normalize_vin

NOW = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
S = VehicleStatus


def vehicle(status: S = S.AVAILABLE, trip: uuid.UUID | None = None, **kw: object) -> Vehicle:
    fields: dict[str, object] = {
        "id": uuid.uuid4(),
        "vin": "WVWZZZ1JZXW000001",
        "model": "Robo-1",
        "seats": 4,
        "status": status,
        "battery_pct": 80.0,
        "lat": 52.5,
        "lon": 13.4,
        "odometer_km": 10.0,
        "created_at": NOW,
        "updated_at": NOW,
        "reserved_trip_id": trip,
    }
    fields.update(kw)
    return Vehicle(**fields)  # type: ignore[arg-type]


def reading(at: dt.datetime, lat: float = 1.0) -> Reading:
    return Reading(lat=lat, lon=2.0, speed_kph=30.0, battery_pct=50.0, recorded_at=at)


@pytest.mark.parametrize("raw", ["wvwzzz1jzxw000001", " WVWZZZ1JZXW000001 ", "1HGCM82633A004352"])
def test_vin_is_upper_cased_and_trimmed(raw: str) -> None:
    assert normalize_vin(raw) == raw.strip().upper()


def test_vin_check_digit_is_not_required() -> None:
    # A European VIN: position 9 is a filler, not the North-American check digit.
    assert normalize_vin("WVWZZZ1JZXW000001") == "WVWZZZ1JZXW000001"


@pytest.mark.parametrize(
    "raw",
    [
        "WVWZZZ1JZXW00000",
        "WVWZZZ1JZXW0000011",
        "WVWZZZ1JZXW00000I",
        "WVWZZZ1JZXW00000O",
        "WVWZZZ1JZXW00000Q",
        "WVWZZZ1JZXW00000-",
        "WVWZZZ1JZXW00000É",
        "WVWZZZ1JZXW0000ß",  # upper-cased it would be 17 characters
        "WVWZZZ1JZXW00000\u017f",  # a long s: an `S` only by Unicode case folding
        "\u00a0WVWZZZ1JZXW000001",  # a no-break space is not trimmed
        "",
    ],
)
def test_malformed_vin_is_refused_naming_vin(raw: str) -> None:
    with pytest.raises(InvalidInputError) as exc:
        normalize_vin(raw)
    assert exc.value.extra["errors"][0]["loc"] == ["body", "vin"]
    assert not re.search(VIN_PATTERN, raw)  # and the published pattern refuses it too


@pytest.mark.parametrize("raw", ["wvwzzz1jzxw000001", " WVWZZZ1JZXW000001\t", "1HGCM82633A004352"])
def test_the_published_vin_pattern_takes_what_is_accepted(raw: str) -> None:
    assert re.search(VIN_PATTERN, raw)
    assert normalize_vin(raw) == raw.strip().upper()


@pytest.mark.parametrize("space", list(" \t\n\r\f\v"))
def test_each_trimmed_whitespace_character_is_taken_by_the_published_pattern_too(
    space: str,
) -> None:
    raw = f"{space}WVWZZZ1JZXW000001{space}"
    assert normalize_vin(raw) == "WVWZZZ1JZXW000001"
    assert re.search(VIN_PATTERN, raw)


def test_the_published_vin_pattern_is_printable_ascii() -> None:
    assert VIN_PATTERN.isascii()
    assert VIN_PATTERN.isprintable()  # control characters are written as escapes


def test_device_token_is_checked_against_its_hash_only() -> None:
    token = new_device_token()
    stored = hash_device_token(token)
    assert token not in stored
    assert device_token_matches(token, stored)
    assert not device_token_matches(new_device_token(), stored)


@pytest.mark.parametrize("target", [S.AVAILABLE, S.MAINTENANCE, S.OFFLINE])
def test_operator_may_move_an_idle_vehicle_between_idle_statuses(target: S) -> None:
    v = vehicle(S.MAINTENANCE)
    assert v.set_status(target) == (target != S.MAINTENANCE)
    assert v.status == target


@pytest.mark.parametrize("target", [S.RESERVED, S.IN_TRIP])
def test_operator_cannot_set_trip_statuses(target: S) -> None:
    with pytest.raises(InvalidInputError):
        vehicle().set_status(target)


@pytest.mark.parametrize("current", [S.RESERVED, S.IN_TRIP])
def test_operator_cannot_change_a_vehicle_on_a_trip(current: S) -> None:
    v = vehicle(current, uuid.uuid4())
    with pytest.raises(ConflictError):
        v.set_status(S.MAINTENANCE)
    assert v.status == current


def test_reserve_holds_an_available_vehicle_and_is_idempotent_for_the_same_trip() -> None:
    trip = uuid.uuid4()
    v = vehicle()
    assert v.reserve(trip) is True
    assert (v.status, v.reserved_trip_id) == (S.RESERVED, trip)
    assert v.reserve(trip) is False


@pytest.mark.parametrize("current", [S.RESERVED, S.IN_TRIP, S.MAINTENANCE, S.OFFLINE])
def test_reserve_refuses_a_vehicle_that_is_not_available(current: S) -> None:
    holder = uuid.uuid4() if current in (S.RESERVED, S.IN_TRIP) else None
    v = vehicle(current, holder)
    with pytest.raises(ConflictError):
        v.reserve(uuid.uuid4())
    assert (v.status, v.reserved_trip_id) == (current, holder)


def test_release_frees_only_a_vehicle_reserved_for_that_trip() -> None:
    mine, other = uuid.uuid4(), uuid.uuid4()
    v = vehicle(S.RESERVED, other)
    assert v.release(mine) is False
    assert (v.status, v.reserved_trip_id) == (S.RESERVED, other)
    assert v.release(other) is True
    assert (v.status, v.reserved_trip_id) == (S.AVAILABLE, None)
    assert v.release(other) is False


def test_release_does_not_free_a_vehicle_already_on_the_trip() -> None:
    trip = uuid.uuid4()
    v = vehicle(S.IN_TRIP, trip)
    assert v.release(trip) is False
    assert v.status == S.IN_TRIP


def test_start_needs_a_reservation_for_that_trip_and_is_idempotent() -> None:
    trip = uuid.uuid4()
    with pytest.raises(ConflictError):
        vehicle().start_trip(trip)
    with pytest.raises(ConflictError):
        vehicle(S.RESERVED, uuid.uuid4()).start_trip(trip)
    v = vehicle(S.RESERVED, trip)
    assert v.start_trip(trip) is True
    assert v.status == S.IN_TRIP
    assert v.start_trip(trip) is False


def test_complete_frees_the_vehicle_and_adds_the_distance_once() -> None:
    trip = uuid.uuid4()
    v = vehicle(S.IN_TRIP, trip, odometer_km=100.0)
    assert v.complete_trip(trip, 12.5) is True
    assert (v.status, v.reserved_trip_id, v.odometer_km) == (S.AVAILABLE, None, 112.5)
    assert v.complete_trip(trip, 12.5) is False
    assert v.odometer_km == 112.5


def test_complete_of_another_trip_changes_nothing() -> None:
    trip = uuid.uuid4()
    v = vehicle(S.IN_TRIP, trip)
    assert v.complete_trip(uuid.uuid4(), 5.0) is False
    assert (v.status, v.odometer_km) == (S.IN_TRIP, 10.0)


@pytest.mark.parametrize("distance", [-1.0, float("nan"), float("inf")])
def test_complete_refuses_an_absurd_distance(distance: float) -> None:
    trip = uuid.uuid4()
    v = vehicle(S.IN_TRIP, trip)
    with pytest.raises(InvalidInputError):
        v.complete_trip(trip, distance)
    assert v.status == S.IN_TRIP


def test_an_older_reading_does_not_move_the_vehicle_back() -> None:
    v = vehicle()
    assert v.apply_reading(reading(NOW, lat=3.0)) is True
    assert v.apply_reading(reading(NOW - dt.timedelta(seconds=1), lat=4.0)) is False
    assert v.apply_reading(reading(NOW, lat=5.0)) is False
    assert (v.lat, v.position_recorded_at) == (3.0, NOW)


def test_latest_reading_of_an_unordered_batch() -> None:
    batch = [reading(NOW), reading(NOW + dt.timedelta(seconds=9), 9.0), reading(NOW)]
    assert latest(batch) == batch[1]
    assert latest([]) is None


def test_recorded_at_tolerates_small_clock_skew_only() -> None:
    assert check_recorded_at(NOW + dt.timedelta(minutes=4), NOW)
    with pytest.raises(ValueError, match="future"):
        check_recorded_at(NOW + dt.timedelta(minutes=6), NOW)
    with pytest.raises(ValueError, match="time zone"):
        check_recorded_at(NOW.replace(tzinfo=None), NOW)


def test_recorded_at_is_converted_to_utc() -> None:
    local = dt.datetime(2026, 1, 1, 14, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert check_recorded_at(local, NOW).tzinfo == dt.UTC


def test_nearest_picks_the_closest_vehicle_inside_the_radius() -> None:
    area = Circle(52.52, 13.405, radius_km=5)
    far = vehicle(lat=52.60, lon=13.405)  # ~9 km north
    near = vehicle(lat=52.53, lon=13.405)  # ~1 km
    nearer = vehicle(lat=52.521, lon=13.405)  # ~0.1 km
    assert nearest([far, near, nearer], area) is nearer
    assert nearest([far], area) is None


def test_circle_box_covers_the_circle() -> None:
    area = Circle(52.52, 13.405, radius_km=5)
    min_lat, max_lat, min_lon, max_lon = area.box()
    assert min_lat < 52.52 - 0.04
    assert max_lat > 52.52 + 0.04
    assert min_lon < 13.405 - 0.07
    assert max_lon > 13.405 + 0.07


def test_fleet_summary_lists_every_status_and_counts_active_trips() -> None:
    summary = summarize({S.AVAILABLE: 3, S.RESERVED: 1, S.IN_TRIP: 2}, low_battery=1)
    assert summary.total == 6
    assert summary.by_status == {
        "available": 3,
        "reserved": 1,
        "in_trip": 2,
        "maintenance": 0,
        "offline": 0,
    }
    assert summary.active_trips == 3
    assert summary.low_battery == 1
