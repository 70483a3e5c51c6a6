from __future__ import annotations

import uuid

import httpx
import pytest

from fleet.billing.adapters.tables import invoices
from fleet.common.db import Database, utcnow
from fleet.common.testing import Account, RiderFactory

SEOUL = {"lat": 37.5665, "lon": 126.978}
GANGNAM = {"lat": 37.4979, "lon": 127.0276}


def _problem(r: httpx.Response, status: int) -> dict[str, object]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = r.json()
    return body


def _field(body: dict[str, object]) -> list[object]:
    errors = body["errors"]
    assert isinstance(errors, list)
    return [e["loc"][-1] for e in errors]


async def test_operator_sets_a_tariff_that_quotes_then_use(
    client: httpx.AsyncClient, operator: Account, rider: Account
) -> None:
    r = await client.put(
        "/tariffs/default",
        json={"base_cents": 1000, "per_km_cents": 100, "per_min_cents": 0},
        headers=operator.headers,
    )
    assert r.status_code == 200, r.text
    r = await client.post(
        "/quotes", json={"pickup": SEOUL, "dropoff": GANGNAM}, headers=rider.headers
    )
    assert r.status_code == 200, r.text
    quote = r.json()
    assert 8.5 < quote["distance_km"] < 9.0
    assert quote["duration_min"] == pytest.approx(quote["distance_km"] * 2, abs=0.01)
    assert quote["fare_cents"] == 1000 + round(quote["distance_km"] * 100 + 0.5 - 1e-9)


async def test_model_tariff_overrides_the_default(
    client: httpx.AsyncClient, operator: Account, rider: Account
) -> None:
    body = {"base_cents": 0, "per_km_cents": 0, "per_min_cents": 0}
    await client.put("/tariffs/Ioniq5", json=body, headers=operator.headers)
    r = await client.post(
        "/quotes",
        json={"pickup": SEOUL, "dropoff": GANGNAM, "vehicle_model": "Ioniq5"},
        headers=rider.headers,
    )
    assert r.json()["fare_cents"] == 0
    listed = (await client.get("/tariffs")).json()
    assert [t["vehicle_model"] for t in listed] == ["default", "Ioniq5"]


async def test_a_model_name_with_spaces_gets_its_own_tariff(
    client: httpx.AsyncClient, operator: Account, rider: Account
) -> None:
    body = {"base_cents": 0, "per_km_cents": 0, "per_min_cents": 0}
    r = await client.put("/tariffs/Model%203", json=body, headers=operator.headers)
    assert r.status_code == 200, r.text
    assert r.json()["vehicle_model"] == "Model 3"
    quote = {"pickup": SEOUL, "dropoff": GANGNAM, "vehicle_model": "Model 3"}
    r = await client.post("/quotes", json=quote, headers=rider.headers)
    assert r.json()["fare_cents"] == 0
    for padded in ("%20Model%203", "Model%203%20"):
        _problem(await client.put(f"/tariffs/{padded}", json=body, headers=operator.headers), 422)


async def test_riders_cannot_change_tariffs(client: httpx.AsyncClient, rider: Account) -> None:
    body = {"base_cents": 1, "per_km_cents": 1, "per_min_cents": 1}
    _problem(await client.put("/tariffs/default", json=body, headers=rider.headers), 403)
    _problem(await client.put("/tariffs/default", json=body), 401)
    assert (await client.get("/tariffs")).json()[0]["base_cents"] == 250


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"base_cents": -1, "per_km_cents": 1, "per_min_cents": 1}, "base_cents"),
        ({"base_cents": 1, "per_km_cents": "lots", "per_min_cents": 1}, "per_km_cents"),
        ({"base_cents": 1, "per_km_cents": 1, "per_min_cents": 10**12}, "per_min_cents"),
        ({"base_cents": 1, "per_km_cents": 1}, "per_min_cents"),
        ({"base_cents": 1, "per_km_cents": 1, "per_min_cents": 1, "x": 1}, "x"),
        # found by the API fuzz suite: booleans and numeric strings were taken as cents
        ({"base_cents": 1, "per_km_cents": 1, "per_min_cents": False}, "per_min_cents"),
        ({"base_cents": "5", "per_km_cents": 1, "per_min_cents": 1}, "base_cents"),
    ],
)
async def test_bad_tariffs_are_422_naming_the_field_and_change_nothing(
    client: httpx.AsyncClient, operator: Account, body: dict[str, object], field: str
) -> None:
    r = await client.put("/tariffs/default", json=body, headers=operator.headers)
    assert field in _field(_problem(r, 422))
    assert (await client.get("/tariffs")).json()[0]["base_cents"] == 250


async def test_model_names_with_sql_metacharacters_are_refused(
    client: httpx.AsyncClient, operator: Account
) -> None:
    body = {"base_cents": 1, "per_km_cents": 1, "per_min_cents": 1}
    r = await client.put("/tariffs/x';DROP TABLE x;--", json=body, headers=operator.headers)
    _problem(r, 422)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"pickup": {"lat": 91, "lon": 0}, "dropoff": GANGNAM}, "lat"),
        ({"pickup": {"lat": "north", "lon": 0}, "dropoff": GANGNAM}, "lat"),
        ({"pickup": SEOUL}, "dropoff"),
        ({"pickup": {"lat": 0, "lon": 181}, "dropoff": GANGNAM}, "lon"),
        # found by the API fuzz suite: `false` was taken as 0 and "37.5" as 37.5
        ({"pickup": SEOUL, "dropoff": {"lat": 37.5, "lon": False}}, "lon"),
        ({"pickup": {"lat": "37.5", "lon": 127.0}, "dropoff": GANGNAM}, "lat"),
        ({"pickup": {**SEOUL, "alt": 30}, "dropoff": GANGNAM}, "alt"),
        # PostgreSQL refuses NUL in text: the tariff lookup was a 500
        ({"pickup": SEOUL, "dropoff": GANGNAM, "vehicle_model": "Ioniq\x005"}, "vehicle_model"),
    ],
)
async def test_bad_quotes_are_422_naming_the_field(
    client: httpx.AsyncClient, rider: Account, body: dict[str, object], field: str
) -> None:
    r = await client.post("/quotes", json=body, headers=rider.headers)
    assert field in _field(_problem(r, 422))


async def test_quotes_need_a_token(client: httpx.AsyncClient) -> None:
    _problem(await client.post("/quotes", json={"pickup": SEOUL, "dropoff": GANGNAM}), 401)


async def _invoice(pg_url: str, rider_id: uuid.UUID, amount: int = 1234) -> uuid.UUID:
    db = Database(pg_url, "billing")
    ident = uuid.uuid4()
    try:
        async with db.transaction() as s:
            now = utcnow()
            await s.execute(
                invoices.insert().values(
                    id=ident,
                    trip_id=uuid.uuid4(),
                    rider_id=rider_id,
                    amount_cents=amount,
                    status="paid",
                    created_at=now,
                    updated_at=now,
                )
            )
    finally:
        await db.dispose()
    return ident


async def test_riders_see_only_their_own_invoices(
    client: httpx.AsyncClient, pg_url: str, make_rider: RiderFactory, operator: Account
) -> None:
    ada, bob = await make_rider(), await make_rider()
    mine = await _invoice(pg_url, ada.id)
    theirs = await _invoice(pg_url, bob.id)

    listed = (await client.get("/invoices", headers=ada.headers)).json()
    assert [i["id"] for i in listed["items"]] == [str(mine)]
    own = await client.get(f"/invoices/{mine}", headers=ada.headers)
    assert own.json()["amount_cents"] == 1234
    _problem(await client.get(f"/invoices/{theirs}", headers=ada.headers), 404)

    everything = (await client.get("/invoices", headers=operator.headers)).json()["items"]
    assert {i["id"] for i in everything} == {str(mine), str(theirs)}


async def test_invoice_pages_cover_every_invoice_once(
    client: httpx.AsyncClient, pg_url: str, rider: Account
) -> None:
    made = {str(await _invoice(pg_url, rider.id)) for _ in range(5)}
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/invoices", params=params, headers=rider.headers)).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(made)


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/invoices?limit=201", 422),
        ("/invoices?limit=0", 422),
        ("/invoices?cursor=garbage", 422),
        ("/invoices/not-a-uuid", 422),
        (f"/invoices/{uuid.uuid4()}", 404),
    ],
)
async def test_bad_invoice_queries_are_problems(
    client: httpx.AsyncClient, rider: Account, path: str, status: int
) -> None:
    _problem(await client.get(path, headers=rider.headers), status)


async def test_a_ride_longer_than_a_trip_may_cover_is_not_quoted(
    client: httpx.AsyncClient, rider: Account
) -> None:
    new_york = {"lat": 40.7128, "lon": -74.006}
    r = await client.post(
        "/quotes", json={"pickup": SEOUL, "dropoff": new_york}, headers=rider.headers
    )
    body = _problem(r, 422)
    assert "dropoff" in _field(body)
    assert "2000 km" in str(body["detail"])
