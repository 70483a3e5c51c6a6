"""POST /auth/register, POST /auth/token, GET /users/me and the bootstrapped operator."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from fleet.common.app import create_app
from fleet.common.auth import generate_keypair
from fleet.common.config import DEV_ADMIN_EMAIL, Settings
from fleet.common.db import Database
from fleet.common.testing import Account, app_client
from fleet.user.adapters.passwords import Argon2Passwords
from fleet.user.adapters.users import SqlUserRepository
from fleet.user.app import module
from fleet.user.domain.users import User
from fleet.user.service.accounts import ensure_operator

ProblemCheck = Callable[..., dict[str, Any]]
PASSWORD = "correct-horse-9"


def _reg(email: str = "ada@example.com", **over: object) -> dict[str, object]:
    return {"email": email, "password": PASSWORD, "name": "Ada", **over}


async def _stored(db: Database, email: str) -> User | None:
    async with db.session() as s:
        return await SqlUserRepository(s).by_email(email)


async def test_register_creates_a_rider_with_a_lower_cased_email(
    client: httpx.AsyncClient, user_db: Database
) -> None:
    r = await client.post("/auth/register", json=_reg("Ada.Lovelace@Example.COM"))
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"id", "email", "name", "role"}
    assert body["email"] == "ada.lovelace@example.com"
    assert (body["name"], body["role"]) == ("Ada", "rider")
    stored = await _stored(user_db, "ada.lovelace@example.com")
    assert stored is not None
    assert str(stored.id) == body["id"]
    assert stored.password_hash.startswith("$argon2id$")
    assert PASSWORD not in stored.password_hash


async def test_register_twice_with_the_same_email_in_other_case_is_409(
    client: httpx.AsyncClient, expect_problem: ProblemCheck
) -> None:
    assert (await client.post("/auth/register", json=_reg("ada@example.com"))).status_code == 201
    r = await client.post("/auth/register", json=_reg("ADA@example.com", name="Impostor"))
    expect_problem(r, 409)
    token = await client.post(
        "/auth/token", data={"username": "ada@example.com", "password": PASSWORD}
    )
    me = await client.get(
        "/users/me", headers={"Authorization": f"Bearer {token.json()['access_token']}"}
    )
    assert me.json()["name"] == "Ada"


async def test_registering_the_operators_own_address_is_409_not_a_refused_address(
    client: httpx.AsyncClient, operator: Account, expect_problem: ProblemCheck
) -> None:
    # The dev operator's default address is one registration accepts as an address (it found it
    # taken), so an API fuzzer swapping it into a registration meets the documented 409.
    expect_problem(await client.post("/auth/register", json=_reg(DEV_ADMIN_EMAIL)), 409)


SPECIAL_USE = ["ada@fleet.local", "ada@0.test", "ADA@B.TEST", "ada@home.arpa", "ada@x.onion"]


@pytest.mark.parametrize("address", [*SPECIAL_USE, "ada@y.invalid"])
async def test_an_address_on_a_special_use_domain_is_refused_naming_the_email(
    client: httpx.AsyncClient, expect_problem: ProblemCheck, address: str
) -> None:
    r = await client.post("/auth/register", json=_reg(address))
    expect_problem(r, 422)
    assert [e["loc"] for e in r.json()["errors"]] == [["body", "email"]]


async def test_the_documented_address_pattern_refuses_what_registration_refuses(
    client: httpx.AsyncClient,
) -> None:
    # The OpenAPI schema says `format: email` plus a pattern for the special-use domains, so a
    # client (or an API fuzzer) that follows the schema never meets a 422 for its address.
    spec = (await client.get("/openapi.json")).json()
    email = spec["components"]["schemas"]["RegisterIn"]["properties"]["email"]
    pattern = re.compile(email["pattern"])
    for address in (
        "ada@fleet.local", "ada@0.test", "ADA@B.TEST", "ada@home.arpa", "ada@x.onion",
        "ada@y.invalid", "ada@example.com", "ada@fleet.example", "ada@test.com", "ada@localtest.me",
    ):  # fmt: skip
        r = await client.post("/auth/register", json=_reg(address))
        assert (r.status_code == 201) == bool(pattern.search(address)), (address, r.text)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"password": "short77"}, "password"),
        ({"password": "x" * 129}, "password"),
        ({"password": 12345678}, "password"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "n" * 101}, "name"),
        ({"email": "not-an-email"}, "email"),
        ({"email": "ada@example.com'; DROP TABLE users;--"}, "email"),
        ({"role": "operator"}, "role"),
        # found by the API fuzz suite: PostgreSQL refuses NUL in text (it was a 500)
        ({"name": "Ada\x00"}, "name"),
        ({"name": "Ada\x1b[31m"}, "name"),
    ],
)
async def test_register_rejects_bad_fields_by_name_and_stores_nothing(
    client: httpx.AsyncClient,
    user_db: Database,
    expect_problem: ProblemCheck,
    change: dict[str, object],
    field: str,
) -> None:
    expect_problem(await client.post("/auth/register", json={**_reg(), **change}), 422, field)
    assert await _stored(user_db, "ada@example.com") is None


async def test_register_without_a_field_names_it(
    client: httpx.AsyncClient, expect_problem: ProblemCheck
) -> None:
    body = _reg()
    del body["password"]
    expect_problem(await client.post("/auth/register", json=body), 422, "password")


async def test_register_rejects_malformed_json(
    client: httpx.AsyncClient, user_db: Database, expect_problem: ProblemCheck
) -> None:
    r = await client.post(
        "/auth/register",
        content=b'{"email": "ada@example.com", "password": ',
        headers={"content-type": "application/json"},
    )
    expect_problem(r, 422)
    assert await _stored(user_db, "ada@example.com") is None


async def test_register_stores_sql_metacharacters_in_names_verbatim(
    client: httpx.AsyncClient,
) -> None:
    name = "Robert'); DROP TABLE users;-- \"%_"
    r = await client.post("/auth/register", json=_reg(name=name))
    assert r.status_code == 201, r.text
    token = await client.post(
        "/auth/token", data={"username": "ada@example.com", "password": PASSWORD}
    )
    me = await client.get(
        "/users/me", headers={"Authorization": f"Bearer {token.json()['access_token']}"}
    )
    assert me.json()["name"] == name


async def test_token_is_a_bearer_token_that_authenticates_the_rider(
    client: httpx.AsyncClient, settings: Settings, rider: Account
) -> None:
    r = await client.post(
        "/auth/token", data={"username": rider.email.upper(), "password": rider.password}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == settings.jwt_ttl_seconds
    me = await client.get("/users/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.json() == {
        "id": str(rider.id),
        "email": rider.email,
        "name": "Rider",
        "role": "rider",
    }


@pytest.mark.parametrize("case", ["wrong password", "unknown email"])
async def test_token_with_bad_credentials_is_401_without_telling_which(
    client: httpx.AsyncClient, rider: Account, expect_problem: ProblemCheck, case: str
) -> None:
    form = (
        {"username": rider.email, "password": "not-the-password"}
        if case == "wrong password"
        else {"username": "nobody@example.com", "password": rider.password}
    )
    body = expect_problem(await client.post("/auth/token", data=form), 401)
    assert body["detail"] == "invalid email or password"
    assert "access_token" not in body


async def test_token_form_without_username_names_it(
    client: httpx.AsyncClient, expect_problem: ProblemCheck
) -> None:
    r = await client.post("/auth/token", data={"password": PASSWORD})
    expect_problem(r, 422, "username")


async def test_token_with_a_nul_in_the_username_is_422_naming_it(
    client: httpx.AsyncClient, expect_problem: ProblemCheck
) -> None:
    # Found by the API fuzz suite: the user lookup failed on PostgreSQL (a 500).
    r = await client.post("/auth/token", data={"username": "ada\x00@example.com", "password": "x"})
    expect_problem(r, 422, "username")


async def test_token_refuses_a_json_body(
    client: httpx.AsyncClient, rider: Account, expect_problem: ProblemCheck
) -> None:
    r = await client.post("/auth/token", json={"username": rider.email, "password": PASSWORD})
    expect_problem(r, 422)


async def test_token_is_503_when_the_instance_cannot_sign(
    settings: Settings, tmp_path: Path, expect_problem: ProblemCheck
) -> None:
    verify_only = settings.model_copy(
        update={"jwt_public_key": generate_keypair().public_pem, "data_dir": tmp_path / "v"}
    )
    async with app_client(create_app([module()], verify_only, access_log=False)) as c:
        r = await c.post("/auth/token", data={"username": DEV_ADMIN_EMAIL, "password": "x" * 8})
    expect_problem(r, 503)


async def test_me_needs_a_valid_token(
    client: httpx.AsyncClient, expect_problem: ProblemCheck
) -> None:
    expect_problem(await client.get("/users/me"), 401)
    bad = {"Authorization": "Bearer not.a.jwt"}
    expect_problem(await client.get("/users/me", headers=bad), 401)


async def test_me_for_a_token_of_a_deleted_user_is_404(
    client: httpx.AsyncClient, app: FastAPI, expect_problem: ProblemCheck
) -> None:
    token = app.state.fleet.issuer.issue(uuid.uuid4(), "rider", "ghost@example.com")
    r = await client.get("/users/me", headers={"Authorization": f"Bearer {token}"})
    expect_problem(r, 404)


async def test_the_operator_is_bootstrapped_from_settings(
    client: httpx.AsyncClient, operator: Account
) -> None:
    me = await client.get("/users/me", headers=operator.headers)
    assert me.json()["role"] == "operator"
    assert me.json()["email"] == DEV_ADMIN_EMAIL


async def test_operator_bootstrap_survives_restarts(
    client: httpx.AsyncClient, settings: Settings, user_db: Database
) -> None:
    before = await _stored(user_db, DEV_ADMIN_EMAIL)
    async with app_client(create_app([module()], settings, access_log=False)) as c:
        assert (await c.get("/health")).status_code == 200
    after = await _stored(user_db, DEV_ADMIN_EMAIL)
    assert before is not None
    assert before == after


async def test_operator_bootstrap_is_safe_when_processes_race(user_db: Database) -> None:
    passwords = Argon2Passwords.for_env("test")
    email = "Ops@Example.com"
    made = await asyncio.gather(
        *(ensure_operator(user_db, passwords, email, "operator-secret") for _ in range(4))
    )
    assert len({u.id for u in made}) == 1
    assert made[0].email == "ops@example.com"
    assert made[0].role == "operator"
