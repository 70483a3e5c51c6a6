"""POST /vehicles/{id}/telemetry and GET /vehicles/{id}/location."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import httpx

Headers = dict[str, str]


def ago(seconds: float) -> str:
    return (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds)).isoformat()


def reading(seconds_ago: float = 0, lat: float = 52.53, **kw: Any) -> dict[str, Any]:
    body = {
        "lat": lat,
        "lon": 13.41,
        "speed_kph": 42.5,
        "battery_pct": 77.5,
        "recorded_at": ago(seconds_ago),
    }
    body.update(kw)
    return body


async def _location(client: httpx.AsyncClient, vid: str, headers: Headers) -> dict[str, Any]:
    r = await client.get(f"/vehicles/{vid}/location", headers=headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_operator_posts_one_reading_and_the_vehicle_moves(
    client: httpx.AsyncClient, op: Headers, rider_h: Headers, make_vehicle: Any
) -> None:
    v = await make_vehicle()
    before = await _location(client, v["id"], rider_h)
    assert before == {"vehicle_id": v["id"], "lat": 52.52, "lon": 13.405, "recorded_at": None}
    one = reading(1)
    r = await client.post(f"/vehicles/{v['id']}/telemetry", json=one, headers=op)
    assert r.status_code == 202, r.text
    assert r.json() == {"accepted": 1}
    loc = await _location(client, v["id"], rider_h)
    assert (loc["lat"], loc["lon"]) == (52.53, 13.41)
    assert dt.datetime.fromisoformat(loc["recorded_at"]) == dt.datetime.fromisoformat(
        one["recorded_at"]
    )
    got = (await client.get(f"/vehicles/{v['id']}", headers=rider_h)).json()
    assert got["battery_pct"] == 77.5


async def test_device_posts_a_batch_with_its_own_token(
    client: httpx.AsyncClient, rider_h: Headers, make_vehicle: Any
) -> None:
    v = await make_vehicle()
    batch = [reading(30, lat=52.50), reading(10, lat=52.54), reading(20, lat=52.51)]
    r = await client.post(
        f"/vehicles/{v['id']}/telemetry",
        json=batch,
        headers={"X-Device-Token": v["device_token"]},
    )
    assert r.status_code == 202, r.text
    assert r.json() == {"accepted": 3}
    assert (await _location(client, v["id"], rider_h))["lat"] == 52.54


async def test_out_of_order_reading_does_not_move_the_vehicle_back(
    client: httpx.AsyncClient, op: Headers, make_vehicle: Any
) -> None:
    v = await make_vehicle()
    url = f"/vehicles/{v['id']}/telemetry"
    assert (await client.post(url, json=reading(5, lat=10.0), headers=op)).status_code == 202
    late = await client.post(url, json=reading(60, lat=20.0, battery_pct=99), headers=op)
    assert late.status_code == 202  # stored for history, but older than the known position
    loc = await _location(client, v["id"], op)
    assert loc["lat"] == 10.0
    assert (await client.get(f"/vehicles/{v['id']}", headers=op)).json()["battery_pct"] == 77.5


async def test_a_batch_of_1000_is_accepted_and_1001_refused(
    client: httpx.AsyncClient, op: Headers, make_vehicle: Any, problem: Any
) -> None:
    v = await make_vehicle()
    url = f"/vehicles/{v['id']}/telemetry"
    batch = [reading(1000 - i, lat=40 + i / 100) for i in range(1000)]
    r = await client.post(url, json=batch, headers=op)
    assert r.status_code == 202, r.text
    assert r.json() == {"accepted": 1000}
    assert (await _location(client, v["id"], op))["lat"] == 40 + 999 / 100
    too_many = [reading(0, lat=1.0)] * 1001
    problem(await client.post(url, json=too_many, headers=op), 422)
    assert (await _location(client, v["id"], op))["lat"] == 40 + 999 / 100


async def test_an_empty_batch_is_refused(
    client: httpx.AsyncClient, op: Headers, make_vehicle: Any, problem: Any
) -> None:
    v = await make_vehicle()
    problem(await client.post(f"/vehicles/{v['id']}/telemetry", json=[], headers=op), 422)


async def test_wrong_device_token_is_refused(
    client: httpx.AsyncClient, op: Headers, make_vehicle: Any, problem: Any
) -> None:
    v = await make_vehicle()
    r = await client.post(
        f"/vehicles/{v['id']}/telemetry",
        json=reading(1, lat=1.0),
        headers={"X-Device-Token": "guessed-token"},
    )
    problem(r, 401)
    assert (await _location(client, v["id"], op))["lat"] == 52.52


async def test_another_vehicles_device_token_is_refused(
    client: httpx.AsyncClient, op: Headers, make_vehicle: Any, problem: Any
) -> None:
    target, other = await make_vehicle(), await make_vehicle()
    r = await client.post(
        f"/vehicles/{target['id']}/telemetry",
        json=reading(1, lat=1.0),
        headers={"X-Device-Token": other["device_token"]},
    )
    problem(r, 401)
    assert (await _location(client, target["id"], op))["recorded_at"] is None


async def test_telemetry_needs_an_operator_or_a_device_token(
    client: httpx.AsyncClient, op: Headers, rider_h: Headers, make_vehicle: Any, problem: Any
) -> None:
    v = await make_vehicle()
    url = f"/vehicles/{v['id']}/telemetry"
    problem(await client.post(url, json=reading(1, lat=1.0)), 401)
    problem(await client.post(url, json=reading(1, lat=1.0), headers=rider_h), 403)
    assert (await _location(client, v["id"], op))["recorded_at"] is None


async def test_telemetry_for_a_missing_or_malformed_vehicle(
    client: httpx.AsyncClient, op: Headers, make_vehicle: Any, problem: Any
) -> None:
    v = await make_vehicle()
    problem(
        await client.post(f"/vehicles/{uuid.uuid4()}/telemetry", json=reading(), headers=op), 404
    )
    r = await client.post(
        f"/vehicles/{uuid.uuid4()}/telemetry",
        json=reading(),
        headers={"X-Device-Token": v["device_token"]},
    )
    problem(r, 404)
    problem(
        await client.post("/vehicles/abc/telemetry", json=reading(), headers=op), 422, "vehicle_id"
    )


BAD_READINGS: list[tuple[dict[str, object], str]] = [
    ({"recorded_at": ago(-3600)}, "recorded_at"),  # an hour in the future
    ({"recorded_at": "2026-01-01T12:00:00"}, "recorded_at"),  # no time zone
    ({"recorded_at": "yesterday"}, "recorded_at"),
    # found by the API fuzz suite: a number was taken as Unix time (0 = 1970-01-01)
    ({"recorded_at": 0}, "recorded_at"),
    ({"recorded_at": 1767225600.5}, "recorded_at"),
    ({"speed_kph": 300.5}, "speed_kph"),
    ({"speed_kph": -1}, "speed_kph"),
    ({"battery_pct": 100.1}, "battery_pct"),
    ({"battery_pct": -0.1}, "battery_pct"),
    ({"battery_pct": "full"}, "battery_pct"),
    ({"lat": -90.1}, "lat"),
    ({"lon": 180.1}, "lon"),
    ({"altitude_m": 30}, "altitude_m"),
]


async def test_bad_reading_is_refused_naming_the_field(
    client: httpx.AsyncClient, op: Headers, make_vehicle: Any, problem: Any
) -> None:
    v = await make_vehicle()
    url = f"/vehicles/{v['id']}/telemetry"
    for change, field in BAD_READINGS:
        bad = {**reading(1, lat=1.0), **change}
        problem(await client.post(url, json=bad, headers=op), 422, field)
        # One bad reading in a batch refuses the whole batch.
        problem(await client.post(url, json=[reading(2, lat=2.0), bad], headers=op), 422, field)
    assert (await _location(client, v["id"], op))["recorded_at"] is None


async def test_small_clock_skew_is_tolerated(
    client: httpx.AsyncClient, op: Headers, make_vehicle: Any
) -> None:
    v = await make_vehicle()
    r = await client.post(f"/vehicles/{v['id']}/telemetry", json=reading(-120, lat=3.0), headers=op)
    assert r.status_code == 202, r.text


async def test_malformed_telemetry_body_is_refused(
    client: httpx.AsyncClient, op: Headers, make_vehicle: Any, problem: Any
) -> None:
    v = await make_vehicle()
    url = f"/vehicles/{v['id']}/telemetry"
    problem(
        await client.post(url, content=b"[{", headers={**op, "Content-Type": "application/json"}),
        422,
    )
    problem(await client.post(url, json="reading", headers=op), 422)
    problem(await client.post(url, json=[1, 2], headers=op), 422)


async def test_location_needs_a_token_and_an_existing_vehicle(
    client: httpx.AsyncClient, rider_h: Headers, make_vehicle: Any, problem: Any
) -> None:
    v = await make_vehicle()
    problem(await client.get(f"/vehicles/{v['id']}/location"), 401)
    problem(await client.get(f"/vehicles/{uuid.uuid4()}/location", headers=rider_h), 404)
    problem(await client.get("/vehicles/nope/location", headers=rider_h), 422, "vehicle_id")
