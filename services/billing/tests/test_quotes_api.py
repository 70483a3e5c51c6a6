from __future__ import annotations

import httpx


async def test_health_answers_without_auth(client: httpx.AsyncClient) -> None:
    r = await client.get("/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"


async def test_ready_reports_every_database(client: httpx.AsyncClient) -> None:
    r = await client.get("/ready")
    assert r.status_code == 200, r.text
    assert r.json()["checks"]["billing.db"] == "ok"


async def test_tariffs_list_has_a_default(client: httpx.AsyncClient) -> None:
    r = await client.get("/tariffs")
    assert r.status_code == 200
    assert r.json()[0]["vehicle_model"] == "default"
