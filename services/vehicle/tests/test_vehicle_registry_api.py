"""POST /vehicles and GET /vehicles."""

from __future__ import annotations

from typing import Any

import httpx

from fleet.common.testing import Account

Headers = dict[str, str]
BODY: dict[str, Any] = {
    "vin": "wvwzzz1jzxw000001",
    "model": "Robo-1",
    "seats": 4,
    "lat": 52.52,
    "lon": 13.405,
}


async def _count(client: httpx.AsyncClient, op: Headers) -> int:
    r = await client.get("/vehicles", params={"limit": 200}, headers=op)
    assert r.status_code == 200
    return len(r.json()["items"])


# --- POST /vehicles ----------------------------------------------------------------------------


async def test_operator_registers_a_vehicle(client: httpx.AsyncClient, op: Headers) -> None:
    r = await client.post("/vehicles", json=BODY, headers=op)
    assert r.status_code == 201, r.text
    v = r.json()
    assert v["vin"] == "WVWZZZ1JZXW000001"
    assert (v["model"], v["seats"], v["lat"], v["lon"]) == ("Robo-1", 4, 52.52, 13.405)
    assert (v["status"], v["battery_pct"], v["odometer_km"]) == ("available", 100.0, 0.0)
    assert len(v["device_token"]) >= 32
    got = await client.get(f"/vehicles/{v['id']}", headers=op)
    assert got.status_code == 200
    assert "device_token" not in got.json()
    assert got.json()["vin"] == v["vin"]


BAD_VINS = [
    "WVWZZZ1JZXW00000I",
    "WVWZZZ1JZXW00000O",
    "WVWZZZ1JZXW00000Q",
    "WVWZZZ1JZXW00000",
    "WVWZZZ1JZXW0000012",
    "WVWZZZ1JZX'00001;",
    "",
    "W" * 65,
]


async def test_malformed_vin_is_refused_naming_vin(
    client: httpx.AsyncClient, op: Headers, problem: Any
) -> None:
    for vin in BAD_VINS:
        r = await client.post("/vehicles", json={**BODY, "vin": vin}, headers=op)
        problem(r, 422, "vin")
    assert await _count(client, op) == 0


async def test_duplicate_vin_is_a_conflict_whatever_its_case(
    client: httpx.AsyncClient, op: Headers, problem: Any
) -> None:
    assert (await client.post("/vehicles", json=BODY, headers=op)).status_code == 201
    r = await client.post("/vehicles", json={**BODY, "vin": BODY["vin"].upper()}, headers=op)
    problem(r, 409)
    assert await _count(client, op) == 1


async def test_registering_needs_a_token(client: httpx.AsyncClient, problem: Any) -> None:
    problem(await client.post("/vehicles", json=BODY), 401)


async def test_rider_cannot_register_a_vehicle(
    client: httpx.AsyncClient, op: Headers, rider_h: Headers, problem: Any
) -> None:
    problem(await client.post("/vehicles", json=BODY, headers=rider_h), 403)
    assert await _count(client, op) == 0


BAD_FIELDS = [
    ("seats", 0),
    ("seats", 10),
    ("seats", -1),
    ("seats", "four"),
    ("seats", 4.5),
    ("seats", True),
    ("model", ""),
    ("model", "   "),
    ("model", "x" * 65),
    ("model", "nul\x00byte"),
    ("model", "two\nlines"),
    ("model", 7),
    ("lat", 90.5),
    ("lat", "52.5"),
    ("lon", -180.5),
    ("lon", None),
    ("battery_pct", 101),
    ("vin", 12345678901234567),
]


async def test_bad_field_is_refused_naming_it(
    client: httpx.AsyncClient, op: Headers, problem: Any
) -> None:
    for field, value in BAD_FIELDS:
        r = await client.post("/vehicles", json={**BODY, field: value}, headers=op)
        problem(r, 422, field)
    assert await _count(client, op) == 0


async def test_unknown_and_missing_fields_are_refused(
    client: httpx.AsyncClient, op: Headers, problem: Any
) -> None:
    problem(
        await client.post("/vehicles", json={**BODY, "status": "in_trip"}, headers=op),
        422,
        "status",
    )
    body = {k: v for k, v in BODY.items() if k != "seats"}
    problem(await client.post("/vehicles", json=body, headers=op), 422, "seats")
    assert await _count(client, op) == 0


async def test_malformed_json_is_refused(
    client: httpx.AsyncClient, op: Headers, problem: Any
) -> None:
    r = await client.post(
        "/vehicles",
        content=b'{"vin": "WVWZZZ1JZXW000001", "model": ',
        headers={**op, "Content-Type": "application/json"},
    )
    problem(r, 422)
    problem(await client.post("/vehicles", json=[BODY], headers=op), 422)
    r = await client.post(
        "/vehicles",
        content=b'{"vin":"WVWZZZ1JZXW000001","model":"M","seats":4,"lat":NaN,"lon":0}',
        headers={**op, "Content-Type": "application/json"},
    )
    problem(r, 422, "lat")
    assert await _count(client, op) == 0


async def test_sql_metacharacters_in_model_are_stored_verbatim(
    client: httpx.AsyncClient, op: Headers
) -> None:
    model = "Robo'); DROP TABLE vehicle.vehicles;--"
    r = await client.post("/vehicles", json={**BODY, "model": model}, headers=op)
    assert r.status_code == 201, r.text
    got = await client.get(f"/vehicles/{r.json()['id']}", headers=op)
    assert got.json()["model"] == model
    assert await _count(client, op) == 1


# --- GET /vehicles -----------------------------------------------------------------------------


async def test_any_user_lists_vehicles_newest_first_page_by_page(
    client: httpx.AsyncClient, rider_h: Headers, make_vehicle: Any
) -> None:
    made = [(await make_vehicle())["id"] for _ in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        r = await client.get("/vehicles", params=params, headers=rider_h)
        assert r.status_code == 200, r.text
        seen += [v["id"] for v in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == made[::-1]


async def test_listing_filters_by_status(
    client: httpx.AsyncClient, op: Headers, make_vehicle: Any
) -> None:
    a = await make_vehicle()
    await make_vehicle()
    await client.patch(f"/vehicles/{a['id']}", json={"status": "maintenance"}, headers=op)
    r = await client.get("/vehicles", params={"status": "maintenance"}, headers=op)
    assert [v["id"] for v in r.json()["items"]] == [a["id"]]
    r = await client.get("/vehicles", params={"status": "offline"}, headers=op)
    assert r.json() == {"items": [], "next_cursor": None}


async def test_listing_near_a_point_keeps_only_vehicles_within_the_radius(
    client: httpx.AsyncClient, rider_h: Headers, make_vehicle: Any
) -> None:
    centre = await make_vehicle(lat=52.52, lon=13.405)
    three_km = await make_vehicle(lat=52.547, lon=13.405)
    await make_vehicle(lat=52.60, lon=13.405)  # ~9 km
    hamburg = await make_vehicle(lat=53.551, lon=9.993)  # ~255 km
    await make_vehicle(lat=48.137, lon=11.575)  # Munich, ~504 km
    r = await client.get("/vehicles", params={"near": "52.52,13.405"}, headers=rider_h)
    assert r.status_code == 200, r.text
    assert {v["id"] for v in r.json()["items"]} == {centre["id"], three_km["id"]}
    r = await client.get(
        "/vehicles", params={"near": "52.52,13.405", "radius_km": 1}, headers=rider_h
    )
    assert [v["id"] for v in r.json()["items"]] == [centre["id"]]
    r = await client.get(
        "/vehicles", params={"near": "52.52,13.405", "radius_km": 500}, headers=rider_h
    )
    assert len(r.json()["items"]) == 4
    assert hamburg["id"] in {v["id"] for v in r.json()["items"]}


BAD_LIST_QUERIES: list[tuple[dict[str, str | int], str]] = [
    ({"status": "flying"}, "status"),
    ({"status": "AVAILABLE"}, "status"),
    ({"near": "52.5"}, "near"),
    ({"near": "52.5,13.4,1"}, "near"),
    ({"near": "north,east"}, "near"),
    ({"near": "91,0"}, "near"),
    ({"near": "0,181"}, "near"),
    ({"near": "nan,0"}, "near"),
    ({"near": "1,2", "radius_km": 0}, "radius_km"),
    ({"near": "1,2", "radius_km": -3}, "radius_km"),
    ({"near": "1,2", "radius_km": 501}, "radius_km"),
    ({"near": "1,2", "radius_km": "far"}, "radius_km"),
    ({"radius_km": 5}, "radius_km"),
    ({"limit": 0}, "limit"),
    ({"limit": 201}, "limit"),
    ({"cursor": "not-a-cursor"}, "cursor"),
]


async def test_bad_list_query_is_refused_naming_the_parameter(
    client: httpx.AsyncClient, op: Headers, problem: Any
) -> None:
    for params, field in BAD_LIST_QUERIES:
        problem(await client.get("/vehicles", params=params, headers=op), 422, field)


async def test_listing_needs_a_token(client: httpx.AsyncClient, problem: Any) -> None:
    problem(await client.get("/vehicles"), 401)


async def test_accounts_from_the_user_service_work_on_vehicle_routes(
    client: httpx.AsyncClient, operator: Account, rider: Account, problem: Any
) -> None:
    r = await client.post("/vehicles", json=BODY, headers=operator.headers)
    assert r.status_code == 201, r.text
    problem(
        await client.post(
            "/vehicles", json={**BODY, "vin": "1HGCM82633A004352"}, headers=rider.headers
        ),
        403,
    )
    listed = await client.get("/vehicles", headers=rider.headers)
    assert [v["id"] for v in listed.json()["items"]] == [r.json()["id"]]
