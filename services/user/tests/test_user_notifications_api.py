"""GET /notifications and POST /notifications/{id}/read."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from fleet.common.db import Database
from fleet.common.testing import Account, RiderFactory
from fleet.user.service.notifications import notify

ProblemCheck = Callable[..., dict[str, Any]]


async def _items(client: httpx.AsyncClient, who: Account, **params: Any) -> dict[str, Any]:
    r = await client.get("/notifications", headers=who.headers, params=params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_a_new_rider_is_welcomed(client: httpx.AsyncClient, rider: Account) -> None:
    page = await _items(client, rider)
    assert page["next_cursor"] is None
    [welcome] = page["items"]
    assert welcome["kind"] == "welcome"
    assert welcome["read_at"] is None
    assert set(welcome) == {"id", "kind", "title", "body", "created_at", "read_at"}


async def test_notifications_are_newest_first_and_paginated(
    client: httpx.AsyncClient, rider: Account, user_db: Database
) -> None:
    for i in range(4):
        await notify(user_db, rider.id, "trip", f"n{i}", "body")
    first = await _items(client, rider, limit=3)
    assert [n["title"] for n in first["items"]] == ["n3", "n2", "n1"]
    assert first["next_cursor"]
    rest = await _items(client, rider, limit=3, cursor=first["next_cursor"])
    assert [n["title"] for n in rest["items"]] == ["n0", "Welcome to Fleet"]
    assert rest["next_cursor"] is None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
    ],
)
async def test_bad_paging_parameters_are_422_naming_them(
    client: httpx.AsyncClient,
    rider: Account,
    expect_problem: ProblemCheck,
    params: dict[str, Any],
    field: str,
) -> None:
    r = await client.get("/notifications", headers=rider.headers, params=params)
    expect_problem(r, 422, field)


async def test_notifications_need_a_token(
    client: httpx.AsyncClient, expect_problem: ProblemCheck
) -> None:
    expect_problem(await client.get("/notifications"), 401)
    expect_problem(await client.post(f"/notifications/{uuid.uuid4()}/read"), 401)


async def test_each_user_sees_only_their_own_notifications(
    client: httpx.AsyncClient, make_rider: RiderFactory, operator: Account, user_db: Database
) -> None:
    a, b = await make_rider(), await make_rider()
    await notify(user_db, a.id, "trip", "for a only", "secret")
    assert "for a only" in [n["title"] for n in (await _items(client, a))["items"]]
    assert [n["title"] for n in (await _items(client, b))["items"]] == ["Welcome to Fleet"]
    assert (await _items(client, operator))["items"] == []


async def test_marking_a_notification_read_sets_read_at(
    client: httpx.AsyncClient, rider: Account
) -> None:
    [welcome] = (await _items(client, rider))["items"]
    r = await client.post(f"/notifications/{welcome['id']}/read", headers=rider.headers)
    assert r.status_code == 200, r.text
    assert r.json()["read_at"] is not None
    [after] = (await _items(client, rider))["items"]
    assert after["read_at"] == r.json()["read_at"]


async def test_another_riders_or_a_missing_notification_is_404(
    client: httpx.AsyncClient, make_rider: RiderFactory, expect_problem: ProblemCheck
) -> None:
    a, b = await make_rider(), await make_rider()
    [welcome] = (await _items(client, a))["items"]
    expect_problem(
        await client.post(f"/notifications/{welcome['id']}/read", headers=b.headers), 404
    )
    expect_problem(await client.post(f"/notifications/{uuid.uuid4()}/read", headers=b.headers), 404)
    assert (await _items(client, a))["items"][0]["read_at"] is None


async def test_a_malformed_notification_id_is_422(
    client: httpx.AsyncClient, rider: Account, expect_problem: ProblemCheck
) -> None:
    r = await client.post("/notifications/1%27%20OR%201=1/read", headers=rider.headers)
    expect_problem(r, 422, "notification_id")
