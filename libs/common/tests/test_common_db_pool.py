"""The PostgreSQL connection pool: dead connections are replaced, live ones cost no extra trip."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import event, text

from fleet.common.db import Database

pytestmark = pytest.mark.postgres


@pytest.fixture
async def db(fresh_pg_url: str) -> AsyncIterator[Database]:
    database = Database(fresh_pg_url, "public")
    try:
        yield database
    finally:
        await database.dispose()


async def _backend_pid(db: Database) -> int:
    async with db.transaction() as session:
        return int((await session.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def test_a_connection_the_server_closed_is_replaced_at_checkout(
    db: Database, fresh_pg_url: str
) -> None:
    first = await _backend_pid(db)
    admin = Database(fresh_pg_url, "public")  # as a server restart would, from outside the pool
    try:
        async with admin.transaction() as session:
            await session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        for _ in range(200):
            async with admin.transaction() as session:
                gone = await session.execute(
                    text("SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = :pid"),
                    {"pid": first},
                )
                if gone.scalar_one():
                    break
            await asyncio.sleep(0.01)
    finally:
        await admin.dispose()
    await asyncio.sleep(0.05)  # the client reads the closed socket on its next loop iteration

    assert await _backend_pid(db) != first


async def test_a_transaction_sends_its_statements_and_nothing_else(db: Database) -> None:
    sent: list[str] = []

    def log_queries(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection._connection.add_query_logger(lambda record: sent.append(record.query))

    event.listen(db.engine.sync_engine, "connect", log_queries)
    await _backend_pid(db)  # opens the pooled connection
    sent.clear()

    await _backend_pid(db)

    # Only simple queries are logged (not prepared ones such as the SELECT): a pre-ping would
    # show up here as an extra BEGIN and ROLLBACK.
    assert sent == ["BEGIN;", "COMMIT;"]


async def test_concurrent_transactions_beyond_the_pool_wait_and_reuse_its_connections(
    fresh_pg_url: str,
) -> None:
    db = Database(fresh_pg_url, "public", pool_size=3)
    try:

        async def hold() -> int:
            async with db.transaction() as session:
                await session.execute(text("SELECT pg_sleep(0.05)"))
                return int((await session.execute(text("SELECT pg_backend_pid()"))).scalar_one())

        pids = await asyncio.gather(*(hold() for _ in range(9)))
        again = await asyncio.gather(*(hold() for _ in range(9)))
    finally:
        await db.dispose()

    assert len(set(pids)) <= 3
    assert set(again) == set(pids)  # no connection was closed and reopened in between


async def test_the_servers_sessions_are_named_after_the_service(fresh_pg_url: str) -> None:
    db = Database(fresh_pg_url, "vehicle")
    try:
        async with db.session() as session:
            name = await session.execute(text("SELECT current_setting('application_name')"))
            assert name.scalar_one() == "fleet-vehicle"
    finally:
        await db.dispose()
