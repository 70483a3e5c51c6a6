"""Statements sent through asyncpg directly (`fleet.common.native`) belong to the session's
transaction: they commit, roll back and fail exactly as the session's own statements do.

These pin what `native` relies on in SQLAlchemy's asyncpg adapter (its lazily begun transaction,
its error translation): an upgrade that changes them fails here.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from opentelemetry.trace import SpanKind
from sqlalchemy import Column, Integer, String, Table, bindparam, func, select, update
from sqlalchemy.exc import IntegrityError

from fleet.common import tracing
from fleet.common.db import Database, service_metadata
from fleet.common.native import compiled, fetch_rows, native, rows_changed
from fleet.common.testing import recorded_statements, tables_database

SCHEMA = "native_test"
metadata = service_metadata(SCHEMA)
items = Table(
    "items",
    metadata,
    Column("key", String(50), primary_key=True),
    Column("n", Integer, nullable=False),
)
INSERT = "INSERT INTO native_test.items (key, n) VALUES ($1, $2)"


postgres = pytest.mark.parametrize("backend_url", ["postgres"], indirect=True)


@pytest.fixture
async def db(backend_url: str) -> AsyncIterator[Database]:
    async with tables_database(backend_url, SCHEMA, metadata) as database:
        yield database


async def keys(db: Database) -> set[str]:
    async with db.session() as session:
        return set((await session.execute(select(items.c.key))).scalars())


@postgres
async def test_a_native_statement_sent_first_is_committed_with_the_session(db: Database) -> None:
    async with db.transaction() as session:
        pg = await native(session)
        assert pg is not None
        await pg.execute(INSERT, "native-first", 1)  # before any statement of the session
        await session.execute(items.insert().values(key="session", n=2))
        assert await native(session) is pg  # one object for the whole transaction
    assert await keys(db) == {"native-first", "session"}


@postgres
async def test_a_native_statement_sent_first_rolls_back_with_the_session(db: Database) -> None:
    async def fail() -> None:
        async with db.transaction() as session:
            pg = await native(session)
            assert pg is not None
            await pg.execute(INSERT, "native-first", 1)
            raise RuntimeError("the use case failed")

    with pytest.raises(RuntimeError):
        await fail()
    assert await keys(db) == set()


@postgres
async def test_a_native_statement_in_a_savepoint_rolls_back_with_the_savepoint(
    db: Database,
) -> None:
    async with db.transaction() as session:
        pg = await native(session)
        assert pg is not None
        await pg.execute(INSERT, "before", 1)
        savepoint = await session.begin_nested()
        # The savepoint's first statement is a native one: SQLAlchemy sends SAVEPOINT lazily.
        pg = await native(session)
        assert pg is not None
        await pg.execute(INSERT, "in-savepoint", 2)
        await savepoint.rollback()
        pg = await native(session)
        assert pg is not None
        await pg.execute(INSERT, "after", 3)
    assert await keys(db) == {"before", "after"}


@postgres
async def test_a_native_statement_fails_with_sqlalchemys_exception(db: Database) -> None:
    async def insert_twice() -> None:
        async with db.transaction() as session:
            pg = await native(session)
            assert pg is not None
            await pg.execute(INSERT, "twice", 1)
            await pg.execute(INSERT, "twice", 2)

    with pytest.raises(IntegrityError) as failure:
        await insert_twice()
    assert "duplicate key" in str(failure.value.orig)
    assert await keys(db) == set()


@postgres
async def test_a_compiled_statement_runs_natively_with_its_own_literals(db: Database) -> None:
    query = select(items.c.n, func.upper(func.concat(items.c.key, "-x")).label("shout")).where(
        items.c.key == func.lower("A")
    )
    sql, names, literals = compiled(query, db.engine.dialect)
    assert sql.count("$") == len(names) == len(literals) == 2  # both literals, no parameter
    async with db.transaction() as session:
        await session.execute(items.insert().values(key="a", n=7))
        pg = await native(session)
        assert pg is not None
        rows = await pg.fetch_compiled(query, {})
    assert [(r["n"], r["shout"]) for r in rows] == [(7, "A-X")]
    assert compiled(query, db.engine.dialect)[0] is sql  # compiled once


_BY_MIN_N = (
    select(items.c.key, items.c.n).where(items.c.n >= bindparam("p_min")).order_by(items.c.key)
)


async def test_rows_of_a_statement_built_once_read_the_same_by_name_on_both_backends(
    db: Database,
) -> None:
    async with db.transaction() as session:
        await session.execute(items.insert(), [{"key": "a", "n": 1}, {"key": "b", "n": 5}])
        rows = await fetch_rows(session, _BY_MIN_N, {"p_min": 2})
        native_now = await native(session) is not None
    assert [(r["key"], r["n"]) for r in rows] == [("b", 5)]
    assert native_now == (not db.is_sqlite)  # PostgreSQL: through asyncpg, SQLite: the session


_BUMP = update(items).where(items.c.n >= bindparam("p_min")).values(n=items.c.n + 1)


async def test_rows_changed_counts_the_rows_an_update_wrote_on_both_backends(
    db: Database,
) -> None:
    async with db.transaction() as session:
        await session.execute(
            items.insert(), [{"key": k, "n": n} for k, n in (("a", 1), ("b", 5), ("c", 9))]
        )
        assert await rows_changed(session, _BUMP, {"p_min": 5}) == 2
        assert await rows_changed(session, _BUMP, {"p_min": 100}) == 0
    async with db.session() as session:
        assert sorted((await session.execute(select(items.c.n))).scalars()) == [1, 6, 10]


@postgres
async def test_native_statements_are_recorded_with_the_sessions_own(db: Database) -> None:
    with recorded_statements(db) as seen:
        async with db.transaction() as session:
            await session.execute(select(items.c.key))
            pg = await native(session)
            assert pg is not None
            await pg.execute(INSERT, "k", 1)
    assert [s.split(" ")[0] for s in seen] == ["SELECT", "INSERT"]


@postgres
async def test_a_native_statement_has_a_client_span_under_the_current_one(db: Database) -> None:
    with tracing.capture_spans() as spans, tracing.tracer().start_as_current_span("use case"):
        async with db.transaction() as session:
            pg = await native(session)
            assert pg is not None
            await pg.execute(INSERT, str(uuid.uuid4()), 1)
    parent = next(s for s in spans.get_finished_spans() if s.name == "use case")
    sql = [s for s in spans.get_finished_spans() if s.kind is SpanKind.CLIENT]
    assert len(sql) == 1
    assert sql[0].name.startswith("INSERT ")
    assert sql[0].parent is not None
    assert sql[0].parent.span_id == parent.context.span_id
    attributes = sql[0].attributes or {}
    assert attributes["db.system"] == "postgresql"
    assert str(attributes["db.statement"]).startswith("INSERT INTO native_test.items")


async def test_there_is_no_native_connection_on_sqlite(tmp_path: Path) -> None:
    async with (
        tables_database(f"sqlite+aiosqlite:///{tmp_path}/native.db", SCHEMA, metadata) as db,
        db.transaction() as session,
    ):
        assert await native(session) is None
