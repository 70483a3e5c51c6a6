"""GET /trips, /trips/{id} and /trips/{id}/tracking: riders see their own, operators all."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable

import httpx
import pytest

from fleet.common.testing import Account, RiderFactory, assert_problem
from fleet.trip.domain.tracking import TrackingPoint
from fleet.trip.domain.trips import Trip, TripStatus

SeedTrip = Callable[..., Awaitable[Trip]]
SeedTracking = Callable[..., Awaitable[list[TrackingPoint]]]
T0 = dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.UTC)


def ids(r: httpx.Response) -> list[str]:
    assert r.status_code == 200, r.text
    return [t["id"] for t in r.json()["items"]]


async def test_a_rider_reads_their_trip_in_full(
    client: httpx.AsyncClient, rider: Account, seed_trip: SeedTrip
) -> None:
    trip = await seed_trip(rider.id, status=TripStatus.COMPLETED, saga_id=uuid.uuid4())
    r = await client.get(f"/trips/{trip.id}", headers=rider.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == str(trip.id)
    assert body["rider_id"] == str(rider.id)
    assert body["vehicle_id"] == str(trip.vehicle_id)
    assert body["status"] == "completed"
    assert body["pickup"] == {"lat": trip.pickup.lat, "lon": trip.pickup.lon}
    assert body["dropoff"] == {"lat": trip.dropoff.lat, "lon": trip.dropoff.lon}
    assert (body["quoted_fare_cents"], body["fare_cents"]) == (650, 575)
    assert (body["distance_km"], body["duration_min"]) == (2.1, 6.5)
    assert body["saga_id"] == str(trip.saga_id)
    assert body["rejection_reason"] is None
    assert dt.datetime.fromisoformat(body["created_at"]) == T0
    assert dt.datetime.fromisoformat(body["updated_at"]) == T0
    assert "idempotency_key" not in body
    assert "request_hash" not in body


async def test_a_rejected_trip_shows_why(
    client: httpx.AsyncClient, rider: Account, seed_trip: SeedTrip
) -> None:
    trip = await seed_trip(rider.id, status=TripStatus.REJECTED)
    body = (await client.get(f"/trips/{trip.id}", headers=rider.headers)).json()
    assert (body["status"], body["rejection_reason"]) == ("rejected", "no vehicle available")
    assert body["vehicle_id"] is None


async def test_another_riders_trip_is_not_found(
    client: httpx.AsyncClient, rider: Account, make_rider: RiderFactory, seed_trip: SeedTrip
) -> None:
    other = await make_rider()
    trip = await seed_trip(other.id)
    r = await client.get(f"/trips/{trip.id}", headers=rider.headers)
    assert_problem(r, 404)
    assert str(rider.id) not in r.text


async def test_an_unknown_trip_is_not_found(client: httpx.AsyncClient, rider: Account) -> None:
    assert_problem(await client.get(f"/trips/{uuid.uuid4()}", headers=rider.headers), 404)


async def test_an_operator_reads_any_trip(
    client: httpx.AsyncClient, rider: Account, operator: Account, seed_trip: SeedTrip
) -> None:
    trip = await seed_trip(rider.id)
    r = await client.get(f"/trips/{trip.id}", headers=operator.headers)
    assert r.status_code == 200, r.text
    assert r.json()["rider_id"] == str(rider.id)


@pytest.mark.parametrize("bad", ["not-a-uuid", "1", "'; DROP TABLE trip.trips; --"])
async def test_a_bad_trip_id_is_422_naming_it(
    client: httpx.AsyncClient, rider: Account, bad: str
) -> None:
    r = await client.get(f"/trips/{bad}", headers=rider.headers)
    assert_problem(r, 422, ["path", "trip_id"])
    r = await client.get(f"/trips/{bad}/tracking", headers=rider.headers)
    assert_problem(r, 422, ["path", "trip_id"])


@pytest.mark.parametrize(
    "path", ["/trips", f"/trips/{uuid.uuid4()}", f"/trips/{uuid.uuid4()}/tracking"]
)
async def test_trip_reads_need_a_token(client: httpx.AsyncClient, path: str) -> None:
    assert_problem(await client.get(path), 401)
    assert_problem(await client.get(path, headers={"Authorization": "Bearer nonsense"}), 401)


async def test_a_rider_lists_only_their_own_trips(
    client: httpx.AsyncClient, rider: Account, make_rider: RiderFactory, seed_trip: SeedTrip
) -> None:
    other = await make_rider()
    mine = [await seed_trip(rider.id, created_at=T0 + dt.timedelta(minutes=i)) for i in range(2)]
    await seed_trip(other.id)
    r = await client.get("/trips", headers=rider.headers)
    assert ids(r) == [str(mine[1].id), str(mine[0].id)]
    assert r.json()["next_cursor"] is None


async def test_an_operator_lists_everyones_trips(
    client: httpx.AsyncClient,
    rider: Account,
    make_rider: RiderFactory,
    operator: Account,
    seed_trip: SeedTrip,
) -> None:
    other = await make_rider()
    a = await seed_trip(rider.id)
    b = await seed_trip(other.id, created_at=T0 + dt.timedelta(seconds=1))
    assert ids(await client.get("/trips", headers=operator.headers)) == [str(b.id), str(a.id)]


async def test_status_filter_narrows_the_list(
    client: httpx.AsyncClient,
    rider: Account,
    make_rider: RiderFactory,
    operator: Account,
    seed_trip: SeedTrip,
) -> None:
    other = await make_rider()
    done = await seed_trip(rider.id, status=TripStatus.COMPLETED)
    await seed_trip(rider.id, status=TripStatus.CANCELLED)
    theirs = await seed_trip(other.id, status=TripStatus.COMPLETED)
    r = await client.get("/trips", params={"status": "completed"}, headers=rider.headers)
    assert ids(r) == [str(done.id)]
    r = await client.get("/trips", params={"status": "completed"}, headers=operator.headers)
    assert set(ids(r)) == {str(done.id), str(theirs.id)}
    r = await client.get("/trips", params={"status": "in_progress"}, headers=rider.headers)
    assert ids(r) == []


@pytest.mark.parametrize("status", ["finished", "COMPLETED", "' OR 1=1 --", ""])
async def test_an_unknown_status_is_422_naming_it(
    client: httpx.AsyncClient, rider: Account, status: str
) -> None:
    r = await client.get("/trips", params={"status": status}, headers=rider.headers)
    assert_problem(r, 422, ["query", "status"])


async def test_pages_cover_every_trip_once(
    client: httpx.AsyncClient, rider: Account, seed_trip: SeedTrip
) -> None:
    trips = [await seed_trip(rider.id, created_at=T0 + dt.timedelta(minutes=i)) for i in range(7)]
    seen: list[str] = []
    sizes: list[int] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        r = await client.get("/trips", params=params, headers=rider.headers)
        sizes.append(len(ids(r)))
        seen += ids(r)
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert sizes == [3, 3, 1]
    assert seen == [str(t.id) for t in reversed(trips)]


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"limit": 201}, ["query", "limit"]),
        ({"limit": 0}, ["query", "limit"]),
        ({"limit": "ten"}, ["query", "limit"]),
        ({"cursor": "garbage!!"}, ["query", "cursor"]),
        ({"cursor": "WyJub3QgYSBkYXRlIiwieCJd"}, ["query", "cursor"]),
    ],
)
async def test_bad_paging_is_422_naming_the_parameter(
    client: httpx.AsyncClient, rider: Account, params: dict[str, str | int], loc: list[str]
) -> None:
    r = await client.get("/trips", params=params, headers=rider.headers)
    assert_problem(r, 422, loc)


async def test_a_rider_follows_their_trip_in_time_order(
    client: httpx.AsyncClient, rider: Account, seed_trip: SeedTrip, seed_tracking: SeedTracking
) -> None:
    trip = await seed_trip(rider.id, status=TripStatus.IN_PROGRESS)
    points = await seed_tracking(trip, 5)
    r = await client.get(f"/trips/{trip.id}/tracking", headers=rider.headers)
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [dt.datetime.fromisoformat(p["recorded_at"]) for p in items] == [
        p.recorded_at for p in points
    ]
    assert items[0] == {
        "vehicle_id": str(trip.vehicle_id),
        "lat": points[0].lat,
        "lon": points[0].lon,
        "speed_kph": points[0].speed_kph,
        "recorded_at": items[0]["recorded_at"],
    }


async def test_tracking_pages_follow_on(
    client: httpx.AsyncClient,
    rider: Account,
    operator: Account,
    seed_trip: SeedTrip,
    seed_tracking: SeedTracking,
) -> None:
    trip = await seed_trip(rider.id, status=TripStatus.IN_PROGRESS)
    points = await seed_tracking(trip, 5)
    first = await client.get(
        f"/trips/{trip.id}/tracking", params={"limit": 3}, headers=operator.headers
    )
    assert first.status_code == 200, first.text
    cursor = first.json()["next_cursor"]
    second = await client.get(
        f"/trips/{trip.id}/tracking",
        params={"limit": 3, "cursor": cursor},
        headers=operator.headers,
    )
    got = first.json()["items"] + second.json()["items"]
    assert [dt.datetime.fromisoformat(p["recorded_at"]) for p in got] == [
        p.recorded_at for p in points
    ]
    assert second.json()["next_cursor"] is None


async def test_another_riders_tracking_is_not_found(
    client: httpx.AsyncClient,
    rider: Account,
    make_rider: RiderFactory,
    seed_trip: SeedTrip,
    seed_tracking: SeedTracking,
) -> None:
    other = await make_rider()
    trip = await seed_trip(other.id, status=TripStatus.IN_PROGRESS)
    await seed_tracking(trip, 2)
    assert_problem(await client.get(f"/trips/{trip.id}/tracking", headers=rider.headers), 404)
    r = await client.get(f"/trips/{uuid.uuid4()}/tracking", headers=rider.headers)
    assert_problem(r, 404)
