"""Fixtures shared by every test suite of the workspace.

API tests run the whole platform app (all four services, as in embedded mode) in-process against a
throwaway PostgreSQL database: created and migrated once per session, emptied before each test.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from fleet.common import migrations
from fleet.common.app import ServiceModule, create_app
from fleet.common.config import DEV_ADMIN_EMAIL, DEV_ADMIN_PASSWORD, Settings
from fleet.common.db import Database
from fleet.common.testing import (
    Account,
    MakeDb,
    RiderFactory,
    app_client,
    create_database,
    drop_database,
    truncate_schemas,
)
from fleet.platform.services import all_modules, migrate_all

SCHEMAS = [m.schema for m in all_modules()]


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database with every service's schema migrated to head."""
    url = create_database()
    try:
        asyncio.run(migrate_all(url))
        yield url
    finally:
        drop_database(url)


@pytest.fixture(params=["sqlite", "postgres"])
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database on each backend: repository tests run the same code on both."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'repo.db'}"
        return
    url = create_database()
    try:
        yield url
    finally:
        drop_database(url)


@pytest.fixture
def fresh_pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped after it."""
    url = create_database()
    try:
        yield url
    finally:
        drop_database(url)


@pytest.fixture
async def make_db(backend_url: str) -> AsyncIterator[MakeDb]:
    """`await make_db(module)`: the module's migrated database on the parametrised backend."""
    made: list[Database] = []

    async def make(module: ServiceModule) -> Database:
        db = Database(backend_url, module.schema)
        made.append(db)
        await migrations.upgrade(db, module.migrations)
        return db

    yield make
    for db in made:
        await db.dispose()


@pytest.fixture
def settings(tmp_path: Path, pg_url: str) -> Settings:
    return Settings(
        env="test",
        data_dir=tmp_path,
        database_url=pg_url,
        log_level="WARNING",
    )


@pytest.fixture
async def app(settings: Settings, pg_url: str) -> FastAPI:
    await truncate_schemas(pg_url, SCHEMAS)
    return create_app(all_modules(), settings, access_log=False)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(app) as c:
        yield c


async def login(client: httpx.AsyncClient, email: str, password: str) -> str:
    r = await client.post("/auth/token", data={"username": email, "password": password})
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


@pytest.fixture
async def operator(client: httpx.AsyncClient) -> Account:
    """The operator bootstrapped from FLEET_ADMIN_EMAIL / FLEET_ADMIN_PASSWORD."""
    token = await login(client, DEV_ADMIN_EMAIL, DEV_ADMIN_PASSWORD)
    me = (await client.get("/users/me", headers={"Authorization": f"Bearer {token}"})).json()
    return Account(uuid.UUID(me["id"]), DEV_ADMIN_EMAIL, DEV_ADMIN_PASSWORD, token)


@pytest.fixture
def make_rider(client: httpx.AsyncClient) -> RiderFactory:
    """Register a new rider and log them in."""

    async def make(name: str = "Rider", password: str = "correct-horse-9") -> Account:
        email = f"rider-{uuid.uuid4().hex[:10]}@example.com"
        r = await client.post(
            "/auth/register", json={"email": email, "password": password, "name": name}
        )
        assert r.status_code == 201, r.text
        token = await login(client, email, password)
        return Account(uuid.UUID(r.json()["id"]), email, password, token)

    return make


@pytest.fixture
async def rider(make_rider: RiderFactory) -> Account:
    return await make_rider()
