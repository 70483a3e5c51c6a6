"""GET /wallet and POST /wallet/top-up."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from fleet.common.db import Database
from fleet.common.testing import Account, RiderFactory
from fleet.user.adapters.wallets import SqlWalletRepository

ProblemCheck = Callable[..., dict[str, Any]]
EMPTY = {"balance_cents": 0, "held_cents": 0, "available_cents": 0}


async def _wallet(client: httpx.AsyncClient, who: Account) -> dict[str, Any]:
    r = await client.get("/wallet", headers=who.headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_a_new_rider_has_an_empty_wallet(client: httpx.AsyncClient, rider: Account) -> None:
    assert await _wallet(client, rider) == EMPTY


async def test_top_up_credits_the_wallet_and_records_a_ledger_entry(
    client: httpx.AsyncClient, rider: Account, user_db: Database
) -> None:
    r = await client.post("/wallet/top-up", json={"amount_cents": 2500}, headers=rider.headers)
    assert r.status_code == 200, r.text
    expected = {"balance_cents": 2500, "held_cents": 0, "available_cents": 2500}
    assert r.json() == expected
    assert await _wallet(client, rider) == expected
    async with user_db.session() as s:
        entries = await SqlWalletRepository(s).entries(rider.id)
    assert [(e.kind, e.amount_cents, e.balance_after_cents) for e in entries] == [
        ("top_up", 2500, 2500)
    ]


async def test_top_ups_accumulate_up_to_the_per_call_maximum(
    client: httpx.AsyncClient, rider: Account
) -> None:
    for amount in (1, 1_000_000):
        r = await client.post(
            "/wallet/top-up", json={"amount_cents": amount}, headers=rider.headers
        )
        assert r.status_code == 200, r.text
    assert (await _wallet(client, rider))["balance_cents"] == 1_000_001


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"amount_cents": 0}, "amount_cents"),
        ({"amount_cents": -500}, "amount_cents"),
        ({"amount_cents": 1_000_001}, "amount_cents"),
        ({"amount_cents": 10**30}, "amount_cents"),
        ({"amount_cents": "100"}, "amount_cents"),
        ({"amount_cents": 10.5}, "amount_cents"),
        ({"amount_cents": True}, "amount_cents"),
        ({"amount_cents": None}, "amount_cents"),
        ({"amount_cents": "1; DROP TABLE user_svc.wallets"}, "amount_cents"),
        ({"amount": 100}, "amount_cents"),
        ({"amount_cents": 100, "balance_cents": 10**9}, "balance_cents"),
        ([100], "body"),
    ],
)
async def test_top_up_rejects_bad_amounts_by_name_and_credits_nothing(
    client: httpx.AsyncClient,
    rider: Account,
    user_db: Database,
    expect_problem: ProblemCheck,
    body: Any,
    field: str,
) -> None:
    r = await client.post("/wallet/top-up", json=body, headers=rider.headers)
    expect_problem(r, 422, field)
    assert await _wallet(client, rider) == EMPTY
    async with user_db.session() as s:
        assert await SqlWalletRepository(s).entries(rider.id) == []


async def test_top_up_rejects_malformed_json(
    client: httpx.AsyncClient, rider: Account, expect_problem: ProblemCheck
) -> None:
    r = await client.post(
        "/wallet/top-up",
        content=b'{"amount_cents": 10',
        headers={**rider.headers, "content-type": "application/json"},
    )
    expect_problem(r, 422)
    assert await _wallet(client, rider) == EMPTY


async def test_top_up_with_the_same_idempotency_key_credits_once(
    client: httpx.AsyncClient, rider: Account
) -> None:
    headers = {**rider.headers, "Idempotency-Key": "top-up-0001"}
    first = await client.post("/wallet/top-up", json={"amount_cents": 700}, headers=headers)
    await client.post("/wallet/top-up", json={"amount_cents": 300}, headers=rider.headers)
    again = await client.post("/wallet/top-up", json={"amount_cents": 700}, headers=headers)
    assert first.status_code == again.status_code == 200
    assert (
        again.json()
        == first.json()
        == {
            "balance_cents": 700,
            "held_cents": 0,
            "available_cents": 700,
        }
    )
    assert (await _wallet(client, rider))["balance_cents"] == 1000


async def test_reusing_an_idempotency_key_for_another_amount_is_409(
    client: httpx.AsyncClient, rider: Account, expect_problem: ProblemCheck
) -> None:
    headers = {**rider.headers, "Idempotency-Key": "k"}
    await client.post("/wallet/top-up", json={"amount_cents": 700}, headers=headers)
    r = await client.post("/wallet/top-up", json={"amount_cents": 900}, headers=headers)
    expect_problem(r, 409)
    assert (await _wallet(client, rider))["balance_cents"] == 700


async def test_idempotency_keys_are_per_rider(
    client: httpx.AsyncClient, make_rider: RiderFactory
) -> None:
    a, b = await make_rider(), await make_rider()
    for who in (a, b):
        headers = {**who.headers, "Idempotency-Key": "same-key"}
        r = await client.post("/wallet/top-up", json={"amount_cents": 100}, headers=headers)
        assert r.status_code == 200
    assert (await _wallet(client, a))["balance_cents"] == 100
    assert (await _wallet(client, b))["balance_cents"] == 100


async def test_an_overlong_idempotency_key_is_422_naming_the_header(
    client: httpx.AsyncClient, rider: Account, expect_problem: ProblemCheck
) -> None:
    headers = {**rider.headers, "Idempotency-Key": "k" * 129}
    r = await client.post("/wallet/top-up", json={"amount_cents": 100}, headers=headers)
    expect_problem(r, 422, "Idempotency-Key")
    assert await _wallet(client, rider) == EMPTY


@pytest.mark.parametrize("key", ["k\x00", "k\x1f", "k\x7f"])
async def test_an_idempotency_key_with_control_characters_is_422_naming_the_header(
    client: httpx.AsyncClient, rider: Account, expect_problem: ProblemCheck, key: str
) -> None:
    # Found by the API fuzz suite: a NUL in the key failed on PostgreSQL (a 500).
    headers = {**rider.headers, "Idempotency-Key": key}
    r = await client.post("/wallet/top-up", json={"amount_cents": 100}, headers=headers)
    expect_problem(r, 422, "Idempotency-Key")
    assert await _wallet(client, rider) == EMPTY


async def test_wallet_needs_a_token(
    client: httpx.AsyncClient, expect_problem: ProblemCheck
) -> None:
    expect_problem(await client.get("/wallet"), 401)
    expect_problem(await client.post("/wallet/top-up", json={"amount_cents": 100}), 401)


async def test_wallet_is_for_riders_only(
    client: httpx.AsyncClient, operator: Account, expect_problem: ProblemCheck
) -> None:
    expect_problem(await client.get("/wallet", headers=operator.headers), 403)
    r = await client.post("/wallet/top-up", json={"amount_cents": 100}, headers=operator.headers)
    expect_problem(r, 403)


async def test_wallet_of_an_unknown_rider_is_404(
    client: httpx.AsyncClient, app: FastAPI, expect_problem: ProblemCheck
) -> None:
    token = app.state.fleet.issuer.issue(uuid.uuid4(), "rider", "ghost@example.com")
    headers = {"Authorization": f"Bearer {token}"}
    expect_problem(await client.get("/wallet", headers=headers), 404)
    r = await client.post("/wallet/top-up", json={"amount_cents": 100}, headers=headers)
    expect_problem(r, 404)


async def test_a_rider_only_ever_sees_their_own_wallet(
    client: httpx.AsyncClient, make_rider: RiderFactory
) -> None:
    a, b = await make_rider(), await make_rider()
    await client.post("/wallet/top-up", json={"amount_cents": 4200}, headers=a.headers)
    assert (await _wallet(client, a))["balance_cents"] == 4200
    assert await _wallet(client, b) == EMPTY
    # The wallet is chosen by the token alone: no parameter can point at someone else's.
    r = await client.get("/wallet", params={"user_id": str(a.id)}, headers=b.headers)
    assert r.json() == EMPTY
