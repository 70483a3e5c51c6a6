"""The trip state machine: every allowed move, and refusals for the rest."""

from __future__ import annotations

import datetime as dt
import math
import uuid

import pytest

from fleet.common.errors import ConflictError, InvalidInputError
from fleet.trip.domain.trips import (
    ALLOWED_TRANSITIONS,
    InvalidTransition,
    InvalidTripData,
    Location,
    StaleTrip,
    Trip,
    TripStatus,
)
from fleet.trip.service.errors import domain_errors

T0 = dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.UTC)
LATER = T0 + dt.timedelta(minutes=5)


def pending_trip() -> Trip:
    return Trip.request(
        rider_id=uuid.uuid4(),
        pickup=Location(37.5, 127.0),
        dropoff=Location(37.6, 127.1),
        quoted_fare_cents=900,
        at=T0,
    )


def trip_in(status: TripStatus) -> Trip:
    trip = pending_trip()
    if status is TripStatus.REJECTED:
        trip.reject("no vehicle", T0)
    if status in (TripStatus.CONFIRMED, TripStatus.IN_PROGRESS, TripStatus.COMPLETED):
        trip.confirm(uuid.uuid4(), T0)
    if status is TripStatus.CANCELLED:
        trip.confirm(uuid.uuid4(), T0)
        trip.cancel(T0)
    if status in (TripStatus.IN_PROGRESS, TripStatus.COMPLETED):
        trip.start(T0)
    if status is TripStatus.COMPLETED:
        trip.complete(3.0, 9.0, T0)
    assert trip.status is status
    return trip


def move(trip: Trip, target: TripStatus) -> None:
    if target is TripStatus.CONFIRMED:
        trip.confirm(uuid.uuid4(), LATER)
    elif target is TripStatus.REJECTED:
        trip.reject("no vehicle", LATER)
    elif target is TripStatus.IN_PROGRESS:
        trip.start(LATER)
    elif target is TripStatus.COMPLETED:
        trip.complete(3.0, 9.0, LATER)
    elif target is TripStatus.CANCELLED:
        trip.cancel(LATER)
    else:
        pytest.fail(f"no move leads to {target}")


def test_a_new_trip_is_pending_at_version_one_without_vehicle() -> None:
    trip = pending_trip()
    assert trip.status is TripStatus.PENDING
    assert trip.version == 1
    assert trip.vehicle_id is None
    assert trip.created_at == trip.updated_at == T0


def test_confirm_assigns_the_vehicle_and_stamps_the_time() -> None:
    trip, vehicle = pending_trip(), uuid.uuid4()
    trip.confirm(vehicle, LATER)
    assert (trip.status, trip.vehicle_id, trip.confirmed_at) == (
        TripStatus.CONFIRMED,
        vehicle,
        LATER,
    )
    assert trip.updated_at == LATER


def test_reject_keeps_the_reason() -> None:
    trip = pending_trip()
    trip.reject("  insufficient credits  ", LATER)
    assert trip.status is TripStatus.REJECTED
    assert trip.rejection_reason == "insufficient credits"
    assert trip.is_final


def test_a_very_long_rejection_reason_is_cut_to_fit_the_column() -> None:
    trip = pending_trip()
    trip.reject("x" * 2000, LATER)
    assert trip.rejection_reason == "x" * 500


def test_a_rejection_without_reason_is_refused_and_leaves_the_trip_pending() -> None:
    trip = pending_trip()
    with pytest.raises(InvalidTripData) as err:
        trip.reject("   ", LATER)
    assert err.value.field == "rejection_reason"
    assert trip.status is TripStatus.PENDING


def test_start_then_complete_records_the_ride() -> None:
    trip = trip_in(TripStatus.CONFIRMED)
    trip.start(LATER)
    assert (trip.status, trip.started_at) == (TripStatus.IN_PROGRESS, LATER)
    end = LATER + dt.timedelta(minutes=12)
    trip.complete(4.2, 12.0, end, fare_cents=1234)
    assert trip.status is TripStatus.COMPLETED
    assert (trip.distance_km, trip.duration_min, trip.fare_cents) == (4.2, 12.0, 1234)
    assert trip.completed_at == trip.updated_at == end


def test_cancel_a_confirmed_trip() -> None:
    trip = trip_in(TripStatus.CONFIRMED)
    trip.cancel(LATER)
    assert (trip.status, trip.cancelled_at) == (TripStatus.CANCELLED, LATER)


ALLOWED = [(src, dst) for src, targets in ALLOWED_TRANSITIONS.items() for dst in targets]
REFUSED = [
    (src, dst)
    for src in TripStatus
    for dst in TripStatus
    if dst is not TripStatus.PENDING and dst not in ALLOWED_TRANSITIONS[src]
]


def test_the_allowed_moves_are_exactly_those_of_the_contract() -> None:
    assert set(ALLOWED) == {
        (TripStatus.PENDING, TripStatus.CONFIRMED),
        (TripStatus.PENDING, TripStatus.REJECTED),
        (TripStatus.CONFIRMED, TripStatus.IN_PROGRESS),
        (TripStatus.CONFIRMED, TripStatus.CANCELLED),
        (TripStatus.IN_PROGRESS, TripStatus.COMPLETED),
    }


@pytest.mark.parametrize(("src", "dst"), ALLOWED)
def test_every_allowed_move_succeeds(src: TripStatus, dst: TripStatus) -> None:
    trip = trip_in(src)
    move(trip, dst)
    assert trip.status is dst
    assert trip.updated_at == LATER


@pytest.mark.parametrize(("src", "dst"), REFUSED)
def test_every_other_move_is_refused_and_changes_nothing(src: TripStatus, dst: TripStatus) -> None:
    trip = trip_in(src)
    before = (trip.status, trip.updated_at, trip.vehicle_id, trip.rejection_reason)
    with pytest.raises(InvalidTransition) as err:
        move(trip, dst)
    assert (err.value.current, err.value.target) == (src, dst)
    assert (trip.status, trip.updated_at, trip.vehicle_id, trip.rejection_reason) == before


def test_a_pending_trip_cannot_be_cancelled_or_completed() -> None:
    trip = pending_trip()
    with pytest.raises(InvalidTransition):
        trip.cancel(LATER)
    with pytest.raises(InvalidTransition):
        trip.complete(1.0, 2.0, LATER)
    assert trip.status is TripStatus.PENDING


@pytest.mark.parametrize(
    ("distance", "duration", "fare", "field"),
    [
        (-0.1, 5.0, None, "distance_km"),
        (1.0, -1.0, None, "duration_min"),
        (1.0, 1.0, -5, "fare_cents"),
        (2000.5, 5.0, None, "distance_km"),
        (1.0, 24 * 60 + 1, None, "duration_min"),
        (math.nan, 5.0, None, "distance_km"),
        (1.0, math.inf, None, "duration_min"),
    ],
)
def test_complete_refuses_negative_or_absurd_figures(
    distance: float, duration: float, fare: int | None, field: str
) -> None:
    trip = trip_in(TripStatus.IN_PROGRESS)
    with pytest.raises(InvalidTripData) as err:
        trip.complete(distance, duration, LATER, fare_cents=fare)
    assert err.value.field == field
    assert trip.status is TripStatus.IN_PROGRESS


def test_a_negative_quote_is_refused() -> None:
    with pytest.raises(InvalidTripData):
        Trip.request(
            rider_id=uuid.uuid4(),
            pickup=Location(0, 0),
            dropoff=Location(0, 1),
            quoted_fare_cents=-1,
            at=T0,
        )


def test_domain_errors_become_409_and_422_problems() -> None:
    trip = trip_in(TripStatus.COMPLETED)
    with pytest.raises(ConflictError) as conflict, domain_errors():
        trip.cancel(LATER)
    assert conflict.value.status == 409
    assert conflict.value.extra == {"status_now": "completed", "requested": "cancelled"}
    with pytest.raises(ConflictError), domain_errors():
        raise StaleTrip(trip.id, 3)
    with pytest.raises(InvalidInputError) as invalid, domain_errors():
        trip_in(TripStatus.PENDING).reject("", LATER)
    assert invalid.value.extra["errors"][0]["loc"] == ["body", "rejection_reason"]
