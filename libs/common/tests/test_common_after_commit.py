"""`after_commit`: deferred work runs once the outermost transaction commits, and only then."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import Column, Integer, Table, insert
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.common.db import Database, after_commit, service_metadata
from fleet.common.testing import tables_database

SCHEMA = "after_commit_test"
metadata = service_metadata(SCHEMA)
things = Table("things", metadata, Column("n", Integer, primary_key=True))


@pytest.fixture
async def db(backend_url: str) -> AsyncIterator[Database]:
    async with tables_database(backend_url, SCHEMA, metadata) as database:
        yield database


async def test_work_deferred_before_a_savepoint_waits_for_the_outer_commit_not_the_release(
    db: Database,
) -> None:
    ran: list[str] = []
    async with db.transaction() as session:
        after_commit(session, lambda: ran.append("outer"))
        async with session.begin_nested():
            await session.execute(insert(things).values(n=1))
            after_commit(session, lambda: ran.append("inside the savepoint"))
        assert ran == [], "a released savepoint is not a commit"
        await session.execute(insert(things).values(n=2))
        assert ran == []

    assert ran == ["outer", "inside the savepoint"]


async def test_work_deferred_in_a_rolled_back_transaction_never_runs(db: Database) -> None:
    ran: list[str] = []

    async def use_case() -> None:
        async with db.transaction() as session:
            async with session.begin_nested():
                await session.execute(insert(things).values(n=3))
            after_commit(session, lambda: ran.append("outer"))
            raise RuntimeError("the use case failed")

    with pytest.raises(RuntimeError):
        await use_case()

    async with db.transaction() as session:
        await session.execute(insert(things).values(n=4))

    assert ran == []


async def test_work_deferred_in_a_session_of_another_factory_runs_at_its_commit(
    db: Database,
) -> None:
    ran: list[str] = []
    async with AsyncSession(db.engine) as session, session.begin():
        after_commit(session, lambda: ran.append("committed"))
        await session.execute(insert(things).values(n=5))
        assert ran == []
    assert ran == ["committed"]


async def test_a_session_used_twice_runs_only_the_work_of_its_committed_transaction(
    db: Database,
) -> None:
    ran: list[str] = []
    async with db.session() as session:
        await session.begin()
        after_commit(session, lambda: ran.append("first, rolled back"))
        await session.execute(insert(things).values(n=6))
        await session.rollback()
        await session.begin()
        after_commit(session, lambda: ran.append("second"))
        await session.execute(insert(things).values(n=7))
        await session.commit()
    assert ran == ["second"]
