"""Whole-row inserts (fleet.common.inserts): several tables in one statement, and `write_behind`,
which holds a block's inserts back without ever hiding them from the block or losing them to a
savepoint — and, when they are all the transaction does, sends them as its only round trip."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    Column,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Table,
    Uuid,
    func,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.common.db import Database, UTCDateTime, service_metadata
from fleet.common.inserts import insert_rows, write_behind
from fleet.common.native import native
from fleet.common.testing import recorded_statements, tables_database

SCHEMA = "inserts_test"
METADATA = service_metadata(SCHEMA)
ORDERS = Table(
    "orders",
    METADATA,
    Column("id", Uuid, primary_key=True),
    Column("status", String(16), nullable=False),
    Column("total", Float, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("note", String(100)),
)
LINES = Table(
    "lines",
    METADATA,
    Column("order_id", Uuid, ForeignKey(ORDERS.c.id), primary_key=True),
    Column("idx", Integer, primary_key=True),
    Column("detail", JSON),
    Column("blob", LargeBinary, nullable=False),
)
T0 = dt.datetime(2026, 11, 27, 9, 30, 15, 123456, tzinfo=dt.UTC)


@pytest.fixture
async def db(backend_url: str) -> AsyncIterator[Database]:
    async with tables_database(backend_url, SCHEMA, METADATA) as database:
        yield database


def order(status: str = "new", note: str | None = None) -> dict[str, Any]:
    return {"id": uuid.uuid4(), "status": status, "total": 12.5, "created_at": T0, "note": note}


def lines(order_id: uuid.UUID, n: int = 2) -> list[dict[str, Any]]:
    detail: list[dict[str, Any] | None] = [{"sku": "a-1", "qty": 2, "tags": ["x"]}, None]
    return [
        {"order_id": order_id, "idx": i, "detail": detail[i % 2], "blob": bytes([i, 0, 255])}
        for i in range(n)
    ]


async def stored(db: Database) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    async with db.session() as session:
        orders = (await session.execute(select(ORDERS).order_by(ORDERS.c.status))).mappings()
        order_rows = [dict(r) for r in orders]
        found = await session.execute(select(LINES).order_by(LINES.c.order_id, LINES.c.idx))
        return order_rows, [dict(r) for r in found.mappings()]


async def test_rows_of_several_tables_go_in_one_statement_and_read_back_exactly(
    db: Database,
) -> None:
    first, second = order("a", note="fragile"), order("b")
    with recorded_statements(db) as seen:
        async with db.transaction() as session:
            await insert_rows(session, (ORDERS, [first, second]), (LINES, lines(first["id"], 3)))
    orders, written = await stored(db)
    assert orders == [first, second]
    assert written == lines(first["id"], 3)
    if not db.is_sqlite:
        assert len(seen) == 1, seen


async def test_a_write_behind_block_reads_its_own_held_rows(db: Database) -> None:
    row = order()
    async with db.transaction() as session, write_behind(session):
        await insert_rows(session, (ORDERS, [row]))
        count = await session.scalar(select(func.count()).select_from(ORDERS))
        assert count == 1
        if (pg := await native(session)) is not None:
            assert (await pg.fetch("SELECT count(*) FROM inserts_test.orders"))[0][0] == 1
    assert (await stored(db))[0] == [row]


class ChangedMyMind(Exception):
    pass


async def test_a_write_behind_block_that_raises_writes_nothing(db: Database) -> None:
    async def block() -> None:
        async with db.transaction() as session, write_behind(session):
            await insert_rows(session, (ORDERS, [order()]))
            raise ChangedMyMind

    with pytest.raises(ChangedMyMind):
        await block()
    assert await stored(db) == ([], [])


async def test_held_rows_written_early_roll_back_with_the_block(db: Database) -> None:
    async def block() -> None:
        async with db.transaction() as session, write_behind(session):
            await insert_rows(session, (ORDERS, [order()]))
            await session.execute(select(ORDERS))  # writes the held row, inside the transaction
            raise ChangedMyMind

    with pytest.raises(ChangedMyMind):
        await block()
    assert await stored(db) == ([], [])


async def test_a_rolled_back_savepoint_keeps_the_rows_held_before_it(db: Database) -> None:
    kept, dropped = order("kept"), order("dropped")

    async def savepoint(session: AsyncSession) -> None:
        async with session.begin_nested():
            await insert_rows(session, (ORDERS, [dropped]))
            raise ChangedMyMind

    async with db.transaction() as session, write_behind(session):
        await insert_rows(session, (ORDERS, [kept]))
        with pytest.raises(ChangedMyMind):
            await savepoint(session)
    assert (await stored(db))[0] == [kept]


async def test_a_failing_held_insert_writes_none_of_the_blocks_rows(db: Database) -> None:
    taken = order("taken")
    async with db.transaction() as session:
        await insert_rows(session, (ORDERS, [taken]))
    again = order("again")

    async def block() -> None:
        async with db.transaction() as session, write_behind(session):
            await insert_rows(session, (ORDERS, [again]), (LINES, lines(again["id"])))
            await insert_rows(session, (ORDERS, [taken | {"status": "duplicate"}]))

    with pytest.raises(IntegrityError):
        await block()
    assert await stored(db) == ([taken], [])


@contextmanager
def sent_by(driver: Any) -> Iterator[list[str]]:
    """The queries the asyncpg connection `driver` sends, BEGIN and COMMIT included (not
    those SQLAlchemy runs as prepared statements)."""
    sent: list[str] = []

    def log(record: Any) -> None:
        sent.append(" ".join(record.query.split()).upper())

    driver.add_query_logger(log)
    try:
        yield sent
    finally:
        driver.remove_query_logger(log)


@pytest.fixture
async def one_connection_db(fresh_pg_url: str) -> AsyncIterator[Database]:
    """PostgreSQL with a pool of one connection: the one `sent_by` watches."""
    async with tables_database(fresh_pg_url, SCHEMA, METADATA):
        pass
    db = Database(fresh_pg_url, SCHEMA, pool_size=1)
    try:
        yield db
    finally:
        await db.dispose()


async def test_a_transaction_of_held_inserts_only_is_one_round_trip(
    one_connection_db: Database,
) -> None:
    db = one_connection_db
    async with db.engine.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
    for status in ("warm-up", "watched"):  # a new connection first learns the array types
        row = order(status)
        with sent_by(driver) as sent:
            async with db.transaction() as session, write_behind(session):
                await insert_rows(session, (ORDERS, [row]), (LINES, lines(row["id"])))
    assert len(sent) == 1, sent
    assert sent[0].startswith("WITH I0 AS (INSERT INTO INSERTS_TEST.ORDERS"), sent
    assert (await stored(db))[0][1] == row

    with sent_by(driver) as sent:
        async with db.transaction() as session, write_behind(session):
            await session.execute(select(func.count()).select_from(ORDERS))
            await insert_rows(session, (ORDERS, [order("second")]))
    # Something else ran first: the held insert is one statement of an ordinary transaction.
    assert [q.split()[0] for q in sent] == ["BEGIN;", "INSERT", "COMMIT;"], sent
