"""GET /fleet/status, POST /diagnostics and GET /diagnostics."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from fleet.common.db import Database
from fleet.vehicle.service import reservations

Headers = dict[str, str]


async def _diagnose(
    client: httpx.AsyncClient, op: Headers, vehicle_id: str, **kw: Any
) -> dict[str, Any]:
    body = {"vehicle_id": vehicle_id, "code": "P0A80", "severity": "warning", "message": "cell"}
    body.update(kw)
    r = await client.post("/diagnostics", json=body, headers=op)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def _all_diagnostics(client: httpx.AsyncClient, op: Headers) -> list[dict[str, Any]]:
    r = await client.get("/diagnostics", params={"limit": 200}, headers=op)
    assert r.status_code == 200
    return list(r.json()["items"])


# --- GET /fleet/status -------------------------------------------------------------------------


async def test_empty_fleet_reports_zero_for_every_status(
    client: httpx.AsyncClient, op: Headers
) -> None:
    r = await client.get("/fleet/status", headers=op)
    assert r.status_code == 200
    assert r.json() == {
        "total": 0,
        "by_status": dict.fromkeys(
            ("available", "reserved", "in_trip", "maintenance", "offline"), 0
        ),
        "low_battery": 0,
        "active_trips": 0,
    }


async def test_fleet_status_counts_statuses_low_battery_and_active_trips(
    client: httpx.AsyncClient, op: Headers, make_vehicle: Any, vehicle_db: Database
) -> None:
    reserved = await make_vehicle(battery_pct=15)
    riding = await make_vehicle()
    parked = await make_vehicle(battery_pct=19.99)
    await make_vehicle(battery_pct=20)
    await client.patch(f"/vehicles/{parked['id']}", json={"status": "maintenance"}, headers=op)
    await reservations.reserve_vehicle(vehicle_db, uuid.UUID(reserved["id"]), uuid.uuid4())
    trip = uuid.uuid4()
    await reservations.reserve_vehicle(vehicle_db, uuid.UUID(riding["id"]), trip)
    await reservations.start_trip(vehicle_db, uuid.UUID(riding["id"]), trip)
    r = await client.get("/fleet/status", headers=op)
    assert r.json() == {
        "total": 4,
        "by_status": {"available": 1, "reserved": 1, "in_trip": 1, "maintenance": 1, "offline": 0},
        "low_battery": 2,
        "active_trips": 2,
    }


async def test_fleet_status_is_for_operators(
    client: httpx.AsyncClient, rider_h: Headers, problem: Any
) -> None:
    problem(await client.get("/fleet/status"), 401)
    problem(await client.get("/fleet/status", headers=rider_h), 403)


# --- POST /diagnostics -------------------------------------------------------------------------


async def test_operator_files_a_diagnostic(
    client: httpx.AsyncClient, op: Headers, make_vehicle: Any
) -> None:
    v = await make_vehicle()
    d = await _diagnose(client, op, v["id"], severity="critical", message="line 1\nline 2")
    assert (d["vehicle_id"], d["code"], d["severity"]) == (v["id"], "P0A80", "critical")
    assert d["message"] == "line 1\nline 2"
    assert uuid.UUID(d["id"])
    assert d["created_at"]
    assert await _all_diagnostics(client, op) == [d]


async def test_diagnostic_for_a_missing_vehicle_is_not_found(
    client: httpx.AsyncClient, op: Headers, problem: Any
) -> None:
    body = {"vehicle_id": str(uuid.uuid4()), "code": "X1", "severity": "info", "message": "m"}
    problem(await client.post("/diagnostics", json=body, headers=op), 404)
    assert await _all_diagnostics(client, op) == []


BAD_DIAGNOSTICS: list[tuple[dict[str, object], str]] = [
    ({"vehicle_id": "not-a-uuid"}, "vehicle_id"),
    ({"vehicle_id": None}, "vehicle_id"),
    ({"code": ""}, "code"),
    ({"code": "C" * 33}, "code"),
    ({"code": "a\nb"}, "code"),
    ({"severity": "fatal"}, "severity"),
    ({"severity": "CRITICAL"}, "severity"),
    ({"message": "m" * 2001}, "message"),
    ({"message": ""}, "message"),
    ({"message": "nul \x00 byte"}, "message"),
    ({"message": 42}, "message"),
    ({"extra": 1}, "extra"),
]


async def test_bad_diagnostic_is_refused_naming_the_field(
    client: httpx.AsyncClient, op: Headers, make_vehicle: Any, problem: Any
) -> None:
    v = await make_vehicle()
    for change, field in BAD_DIAGNOSTICS:
        body = {"vehicle_id": v["id"], "code": "X1", "severity": "info", "message": "m", **change}
        problem(await client.post("/diagnostics", json=body, headers=op), 422, field)
    assert await _all_diagnostics(client, op) == []


async def test_diagnostic_text_with_sql_metacharacters_is_stored_verbatim(
    client: httpx.AsyncClient, op: Headers, make_vehicle: Any
) -> None:
    v = await make_vehicle()
    message = '\'; DELETE FROM vehicle.diagnostics; -- "quoted" % _ \\'
    d = await _diagnose(client, op, v["id"], code="X'1;--", message=message)
    stored = await _all_diagnostics(client, op)
    assert stored[0]["message"] == message == d["message"]
    assert stored[0]["code"] == "X'1;--"


async def test_diagnostics_are_for_operators(
    client: httpx.AsyncClient, op: Headers, rider_h: Headers, make_vehicle: Any, problem: Any
) -> None:
    v = await make_vehicle()
    body = {"vehicle_id": v["id"], "code": "X1", "severity": "info", "message": "m"}
    problem(await client.post("/diagnostics", json=body), 401)
    problem(await client.post("/diagnostics", json=body, headers=rider_h), 403)
    problem(await client.get("/diagnostics"), 401)
    problem(await client.get("/diagnostics", headers=rider_h), 403)
    assert await _all_diagnostics(client, op) == []


# --- GET /diagnostics --------------------------------------------------------------------------


async def test_diagnostics_list_filters_by_vehicle_and_severity(
    client: httpx.AsyncClient, op: Headers, make_vehicle: Any
) -> None:
    a, b = await make_vehicle(), await make_vehicle()
    a_warn = await _diagnose(client, op, a["id"], severity="warning")
    a_crit = await _diagnose(client, op, a["id"], severity="critical")
    b_crit = await _diagnose(client, op, b["id"], severity="critical")

    async def ids(**params: Any) -> list[str]:
        r = await client.get("/diagnostics", params=params, headers=op)
        assert r.status_code == 200, r.text
        return [d["id"] for d in r.json()["items"]]

    assert await ids() == [b_crit["id"], a_crit["id"], a_warn["id"]]
    assert await ids(vehicle_id=a["id"]) == [a_crit["id"], a_warn["id"]]
    assert await ids(severity="critical") == [b_crit["id"], a_crit["id"]]
    assert await ids(vehicle_id=a["id"], severity="critical") == [a_crit["id"]]
    assert await ids(vehicle_id=str(uuid.uuid4())) == []


async def test_diagnostics_list_pages(
    client: httpx.AsyncClient, op: Headers, make_vehicle: Any
) -> None:
    v = await make_vehicle()
    made = [(await _diagnose(client, op, v["id"], code=f"C{i}"))["id"] for i in range(3)]
    first = (await client.get("/diagnostics", params={"limit": 2}, headers=op)).json()
    assert [d["id"] for d in first["items"]] == made[:0:-1]
    params = {"limit": 2, "cursor": first["next_cursor"]}
    second = (await client.get("/diagnostics", params=params, headers=op)).json()
    assert [d["id"] for d in second["items"]] == [made[0]]
    assert second["next_cursor"] is None


BAD_DIAGNOSTIC_QUERIES: list[tuple[dict[str, str | int], str]] = [
    ({"vehicle_id": "1 OR 1=1"}, "vehicle_id"),
    ({"severity": "fatal"}, "severity"),
    ({"limit": 1000}, "limit"),
    ({"cursor": "!!"}, "cursor"),
]


async def test_bad_diagnostics_query_is_refused_naming_the_parameter(
    client: httpx.AsyncClient, op: Headers, problem: Any
) -> None:
    for params, field in BAD_DIAGNOSTIC_QUERIES:
        problem(await client.get("/diagnostics", params=params, headers=op), 422, field)
