"""GET /breakers (operators) and the breaker metrics on the app's /metrics."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from fleet.common.breaker import BreakerConfig, BreakerRegistry
from fleet.common.testing import Account


async def open_breaker(app: FastAPI, name: str) -> None:
    breakers: BreakerRegistry = app.state.fleet.breakers
    breaker = breakers.get(name, BreakerConfig(min_calls=2))

    async def down() -> None:
        raise ConnectionError("down")

    for _ in range(2):
        with pytest.raises(ConnectionError):
            await breaker.call(down)


async def test_an_operator_sees_every_breaker_with_its_state(
    client: httpx.AsyncClient, app: FastAPI, operator: Account
) -> None:
    await open_breaker(app, "pricing")
    app.state.fleet.breakers.get("maps")
    r = await client.get("/breakers", headers=operator.headers)
    assert r.status_code == 200, r.text
    by_name = {b["name"]: b for b in r.json()}
    assert set(by_name) >= {"pricing", "maps"}
    pricing = by_name["pricing"]
    assert (pricing["state"], pricing["calls"], pricing["failures"]) == ("open", 2, 2)
    assert pricing["failure_rate"] == 1.0
    assert pricing["opened_at"] is not None
    assert (pricing["reset_timeout"], pricing["timeout"]) == (30.0, 3.0)
    assert pricing["shared"] is False  # no Redis in this app
    assert by_name["maps"]["state"] == "closed"
    assert by_name["maps"]["opened_at"] is None


async def test_breaker_state_and_transitions_are_exported(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await open_breaker(app, "pricing")
    text = (await client.get("/metrics")).text
    assert 'circuit_breaker_state{name="pricing"} 1.0' in text
    assert 'circuit_breaker_transitions_total{from="closed",name="pricing",to="open"} 1.0' in text
    assert 'circuit_breaker_calls_total{name="pricing",result="failure"} 2.0' in text


async def test_breakers_need_a_token(client: httpx.AsyncClient) -> None:
    r = await client.get("/breakers")
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_breakers_are_for_operators_only(client: httpx.AsyncClient, rider: Account) -> None:
    r = await client.get("/breakers", headers=rider.headers)
    assert r.status_code == 403
    assert r.headers["content-type"].startswith("application/problem+json")
