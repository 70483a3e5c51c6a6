"""POST /routes: straight-line route estimates for any signed-in user."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from fleet.common.testing import Account, assert_problem
from fleet.trip.domain.routes import decode_polyline

PICKUP = {"lat": 37.5665, "lon": 126.9780}
DROPOFF = {"lat": 37.4979, "lon": 127.0276}


async def test_a_rider_gets_distance_duration_and_polyline(
    client: httpx.AsyncClient, rider: Account
) -> None:
    r = await client.post(
        "/routes", json={"pickup": PICKUP, "dropoff": DROPOFF}, headers=rider.headers
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"distance_km", "duration_min", "polyline", "estimator"}
    assert body["estimator"] == "straight-line"
    assert 8.0 < body["distance_km"] < 9.5
    assert body["duration_min"] == pytest.approx(body["distance_km"] * 2, abs=0.01)
    path = decode_polyline(body["polyline"])
    assert (path[0].lat, path[0].lon) == (PICKUP["lat"], PICKUP["lon"])
    assert (path[-1].lat, path[-1].lon) == (DROPOFF["lat"], DROPOFF["lon"])


async def test_an_operator_may_plan_a_route_too(
    client: httpx.AsyncClient, operator: Account
) -> None:
    r = await client.post(
        "/routes", json={"pickup": PICKUP, "dropoff": PICKUP}, headers=operator.headers
    )
    assert r.status_code == 200, r.text
    assert (r.json()["distance_km"], r.json()["duration_min"]) == (0.0, 0.0)


async def test_planning_a_route_needs_a_token(client: httpx.AsyncClient) -> None:
    r = await client.post("/routes", json={"pickup": PICKUP, "dropoff": DROPOFF})
    assert_problem(r, 401)


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"pickup": {"lat": 91, "lon": 0}, "dropoff": DROPOFF}, ["body", "pickup", "lat"]),
        ({"pickup": PICKUP, "dropoff": {"lat": 0, "lon": -180.5}}, ["body", "dropoff", "lon"]),
        ({"pickup": PICKUP}, ["body", "dropoff"]),
        ({"pickup": {"lat": "37.5", "lon": 127}, "dropoff": DROPOFF}, ["body", "pickup", "lat"]),
        ({"pickup": PICKUP, "dropoff": "Gangnam"}, ["body", "dropoff"]),
        ({"pickup": {"lat": True, "lon": 127}, "dropoff": DROPOFF}, ["body", "pickup", "lat"]),
        ({"pickup": {"lat": 1e308, "lon": 127}, "dropoff": DROPOFF}, ["body", "pickup", "lat"]),
        ({"pickup": PICKUP, "dropoff": {**DROPOFF, "alt": 3}}, ["body", "dropoff", "alt"]),
        ({"pickup": PICKUP, "dropoff": DROPOFF, "via": []}, ["body", "via"]),
    ],
    ids=[
        "lat-91",
        "lon-out-of-range",
        "missing-dropoff",
        "string-lat",
        "string-dropoff",
        "bool-lat",
        "absurd-lat",
        "unknown-field-in-point",
        "unknown-top-level-field",
    ],
)
async def test_bad_route_requests_are_422_naming_the_field(
    client: httpx.AsyncClient, rider: Account, body: dict[str, Any], loc: list[str]
) -> None:
    r = await client.post("/routes", json=body, headers=rider.headers)
    assert_problem(r, 422, loc)


async def test_malformed_json_is_a_problem_not_a_crash(
    client: httpx.AsyncClient, rider: Account
) -> None:
    r = await client.post(
        "/routes",
        content=b'{"pickup": {"lat": 1,',
        headers={**rider.headers, "content-type": "application/json"},
    )
    assert_problem(r, 422)


async def test_nan_coordinates_are_refused(client: httpx.AsyncClient, rider: Account) -> None:
    r = await client.post(
        "/routes",
        content=b'{"pickup": {"lat": NaN, "lon": 1}, "dropoff": {"lat": 1, "lon": 1}}',
        headers={**rider.headers, "content-type": "application/json"},
    )
    assert_problem(r, 422)
