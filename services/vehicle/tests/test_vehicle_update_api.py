"""GET /vehicles/{id} and PATCH /vehicles/{id}."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from fleet.common.db import Database
from fleet.vehicle.service import reservations

Headers = dict[str, str]


# --- GET /vehicles/{id} ------------------------------------------------------------------------


async def test_missing_vehicle_is_not_found(
    client: httpx.AsyncClient, rider_h: Headers, problem: Any
) -> None:
    problem(await client.get(f"/vehicles/{uuid.uuid4()}", headers=rider_h), 404)


async def test_bad_vehicle_id_is_refused_naming_it(
    client: httpx.AsyncClient, rider_h: Headers, problem: Any
) -> None:
    problem(await client.get("/vehicles/1' OR '1'='1", headers=rider_h), 422, "vehicle_id")


async def test_reading_a_vehicle_needs_a_token(
    client: httpx.AsyncClient, make_vehicle: Any, problem: Any
) -> None:
    v = await make_vehicle()
    problem(await client.get(f"/vehicles/{v['id']}"), 401)
    problem(await client.get(f"/vehicles/{v['id']}", headers={"Authorization": "Bearer x"}), 401)


async def test_only_operators_see_which_trip_holds_a_vehicle(
    client: httpx.AsyncClient,
    op: Headers,
    rider_h: Headers,
    make_vehicle: Any,
    vehicle_db: Database,
) -> None:
    v = await make_vehicle()
    trip = uuid.uuid4()
    await reservations.reserve_vehicle(vehicle_db, uuid.UUID(v["id"]), trip)
    as_op = (await client.get(f"/vehicles/{v['id']}", headers=op)).json()
    as_rider = (await client.get(f"/vehicles/{v['id']}", headers=rider_h)).json()
    assert as_op["reserved_trip_id"] == str(trip)
    assert as_rider["status"] == "reserved"
    assert as_rider["reserved_trip_id"] is None


# --- PATCH /vehicles/{id} ----------------------------------------------------------------------


async def test_operator_changes_status_model_and_seats(
    client: httpx.AsyncClient, op: Headers, make_vehicle: Any
) -> None:
    v = await make_vehicle()
    r = await client.patch(
        f"/vehicles/{v['id']}",
        json={"status": "maintenance", "model": "Robo-2", "seats": 6},
        headers=op,
    )
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["model"], r.json()["seats"]) == (
        "maintenance",
        "Robo-2",
        6,
    )
    assert r.json()["version"] == v["version"] + 1
    got = (await client.get(f"/vehicles/{v['id']}", headers=op)).json()
    assert (got["status"], got["model"], got["seats"]) == ("maintenance", "Robo-2", 6)


async def test_empty_patch_changes_nothing(
    client: httpx.AsyncClient, op: Headers, make_vehicle: Any
) -> None:
    v = await make_vehicle()
    r = await client.patch(f"/vehicles/{v['id']}", json={}, headers=op)
    assert r.status_code == 200
    assert r.json()["version"] == v["version"]


BAD_PATCHES = [
    ({"status": "reserved"}, "status"),
    ({"status": "in_trip"}, "status"),
    ({"status": "scrapped"}, "status"),
    ({"seats": 0}, "seats"),
    ({"model": ""}, "model"),
    ({"vin": "WVWZZZ1JZXW000009"}, "vin"),
    ({"odometer_km": 0}, "odometer_km"),
]


async def test_bad_patch_is_refused_naming_the_field(
    client: httpx.AsyncClient, op: Headers, make_vehicle: Any, problem: Any
) -> None:
    v = await make_vehicle()
    for body, field in BAD_PATCHES:
        problem(await client.patch(f"/vehicles/{v['id']}", json=body, headers=op), 422, field)
    after = (await client.get(f"/vehicles/{v['id']}", headers=op)).json()
    assert after == {k: v[k] for k in after}


@pytest.mark.parametrize("start", [False, True])
async def test_status_of_a_vehicle_on_a_trip_cannot_be_changed(
    client: httpx.AsyncClient,
    op: Headers,
    make_vehicle: Any,
    vehicle_db: Database,
    problem: Any,
    start: bool,
) -> None:
    v = await make_vehicle()
    vid, trip = uuid.UUID(v["id"]), uuid.uuid4()
    await reservations.reserve_vehicle(vehicle_db, vid, trip)
    if start:
        await reservations.start_trip(vehicle_db, vid, trip)
    r = await client.patch(f"/vehicles/{vid}", json={"status": "offline"}, headers=op)
    problem(r, 409)
    expected = "in_trip" if start else "reserved"
    assert (await client.get(f"/vehicles/{vid}", headers=op)).json()["status"] == expected
    # Editing the model does not touch the trip.
    r = await client.patch(f"/vehicles/{vid}", json={"model": "Robo-3"}, headers=op)
    assert r.status_code == 200
    assert r.json()["status"] == expected


async def test_patch_needs_an_operator(
    client: httpx.AsyncClient, op: Headers, rider_h: Headers, make_vehicle: Any, problem: Any
) -> None:
    v = await make_vehicle()
    url = f"/vehicles/{v['id']}"
    problem(await client.patch(url, json={"status": "offline"}), 401)
    problem(await client.patch(url, json={"status": "offline"}, headers=rider_h), 403)
    assert (await client.get(url, headers=op)).json()["status"] == "available"


async def test_patch_of_a_missing_or_malformed_id(
    client: httpx.AsyncClient, op: Headers, problem: Any
) -> None:
    problem(await client.patch(f"/vehicles/{uuid.uuid4()}", json={"seats": 2}, headers=op), 404)
    problem(await client.patch("/vehicles/123", json={"seats": 2}, headers=op), 422, "vehicle_id")
