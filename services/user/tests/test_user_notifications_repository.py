"""Booking notifications are added once per rider, kind and trip, only for a rider who exists —
checked in the same statement — on SQLite and on PostgreSQL (`make_db`)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from fleet.common.db import Database, utcnow
from fleet.common.testing import MakeDb, recorded_statements
from fleet.user.adapters.notifications import SqlNotificationRepository
from fleet.user.adapters.tables import notifications
from fleet.user.adapters.users import SqlUserRepository
from fleet.user.app import module
from fleet.user.domain.users import User


@pytest.fixture
async def db(make_db: MakeDb) -> Database:
    return await make_db(module())


async def _rider(db: Database) -> uuid.UUID:
    user = User(uuid.uuid4(), f"{uuid.uuid4().hex}@example.com", "R", "rider", "x", utcnow())
    async with db.transaction() as s:
        await SqlUserRepository(s).add(user)
    return user.id


async def _count(db: Database) -> int:
    async with db.session() as s:
        return int((await s.execute(select(func.count()).select_from(notifications))).scalar_one())


async def test_a_notification_is_added_once_with_one_statement(db: Database) -> None:
    rider, trip = await _rider(db), uuid.uuid4()
    with recorded_statements(db) as seen:
        async with db.transaction() as s:
            first = await SqlNotificationRepository(s).add_once(rider, "k", trip, "T", "B")
    assert first is not None
    assert len(seen) == 1  # the user's existence is checked by the INSERT itself
    async with db.transaction() as s:
        again = await SqlNotificationRepository(s).add_once(rider, "k", trip, "T", "other")
    assert again == first
    assert await _count(db) == 1


async def test_nothing_is_added_for_a_rider_who_does_not_exist(db: Database) -> None:
    async with db.transaction() as s:
        added = await SqlNotificationRepository(s).add_once(
            uuid.uuid4(), "k", uuid.uuid4(), "T", "B"
        )
    assert added is None
    assert await _count(db) == 0
