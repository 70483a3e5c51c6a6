"""SQL repositories of notifications and trip feedback."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import bindparam, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.common.db import insert_for, utcnow
from fleet.common.native import fetch_rows
from fleet.common.pagination import PageParams, newest_first
from fleet.user.adapters.tables import feedback, notifications, users

# The booking saga's send-confirmation runs these per message: built once (the INSERT per dialect),
# executed with parameters.
_ADDS_ONCE: dict[str, Any] = {}
_FIND_ONCE = select(notifications.c.id).where(
    notifications.c.user_id == bindparam("user_id"),
    notifications.c.kind == bindparam("kind"),
    notifications.c.reference == bindparam("reference"),
)


def _add_once_statement(session: AsyncSession) -> Any:
    """The notification's row if its user exists and it is not there yet, RETURNING its id: the
    user's existence is checked in the same statement (one round trip, no row read)."""
    dialect = session.get_bind().dialect.name
    stmt = _ADDS_ONCE.get(dialect)
    if stmt is None:
        columns = ("id", "user_id", "kind", "reference", "title", "body", "created_at")
        values = select(*(bindparam(name, type_=notifications.c[name].type) for name in columns))
        user_exists = exists().where(users.c.id == bindparam("user_id"))
        stmt = _ADDS_ONCE[dialect] = (
            insert_for(dialect, notifications)
            .from_select(columns, values.where(user_exists))
            .on_conflict_do_nothing(index_elements=["user_id", "kind", "reference"])
            .returning(notifications.c.id)
        )
    return stmt


class SqlNotificationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, user_id: uuid.UUID, kind: str, title: str, body: str) -> uuid.UUID:
        ident = uuid.uuid4()
        await self.session.execute(
            notifications.insert().values(
                id=ident, user_id=user_id, kind=kind, title=title, body=body, created_at=utcnow()
            )
        )
        return ident

    async def add_once(
        self, user_id: uuid.UUID, kind: str, reference: uuid.UUID, title: str, body: str
    ) -> uuid.UUID | None:
        """Add the user's `kind` notification about `reference` unless it exists; its id, or
        None if there is no such user (then nothing is added)."""
        params = {"user_id": user_id, "kind": kind, "reference": reference}
        values = {
            **params,
            "id": uuid.uuid4(),
            "title": title,
            "body": body,
            "created_at": utcnow(),
        }
        added = await fetch_rows(self.session, _add_once_statement(self.session), values)
        if added:
            added_id: uuid.UUID = added[0]["id"]
            return added_id
        found: uuid.UUID | None = (
            await self.session.execute(_FIND_ONCE, params)
        ).scalar_one_or_none()
        return found  # None: nothing was added because the user does not exist

    async def get(self, notification_id: uuid.UUID) -> Any | None:
        stmt = select(notifications).where(notifications.c.id == notification_id)
        return (await self.session.execute(stmt)).first()

    async def list(self, user_id: uuid.UUID, page: PageParams) -> list[Any]:
        """Newest first, one row more than the page to tell whether another page follows."""
        stmt = select(notifications).where(notifications.c.user_id == user_id)
        stmt = newest_first(stmt, notifications.c.created_at, notifications.c.id, page)
        return list(await self.session.execute(stmt))

    async def mark_read(self, notification_id: uuid.UUID) -> None:
        await self.session.execute(
            update(notifications)
            .where(notifications.c.id == notification_id, notifications.c.read_at.is_(None))
            .values(read_at=utcnow())
        )


class SqlFeedbackRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(
        self, rider_id: uuid.UUID, trip_id: uuid.UUID, rating: int, comment: str | None
    ) -> Any:
        values = {
            "id": uuid.uuid4(),
            "rider_id": rider_id,
            "trip_id": trip_id,
            "rating": rating,
            "comment": comment,
            "created_at": utcnow(),
        }
        await self.session.execute(feedback.insert().values(**values))
        return values

    async def of_rider(self, rider_id: uuid.UUID) -> list[Any]:
        stmt = select(feedback).where(feedback.c.rider_id == rider_id)
        return list(await self.session.execute(stmt))
