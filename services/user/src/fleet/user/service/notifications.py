"""Use cases: a user's notifications (written by the saga's send-confirmation step, and more)."""

from __future__ import annotations

import uuid
from typing import Any

from fleet.common.app import not_found
from fleet.common.auth import Principal
from fleet.common.db import Database
from fleet.common.pagination import PageParams
from fleet.user.adapters.notifications import SqlNotificationRepository


async def notify(db: Database, user_id: uuid.UUID, kind: str, title: str, body: str) -> uuid.UUID:
    async with db.transaction() as session:
        return await SqlNotificationRepository(session).add(user_id, kind, title, body)


async def list_notifications(db: Database, who: Principal, page: PageParams) -> list[Any]:
    """The caller's own notifications only, operators included."""
    async with db.session() as session:
        return await SqlNotificationRepository(session).list(who.user_id, page)


async def mark_read(db: Database, who: Principal, notification_id: uuid.UUID) -> Any:
    async with db.transaction() as session:
        repo = SqlNotificationRepository(session)
        row = await repo.get(notification_id)
        if row is None or row.user_id != who.user_id:
            raise not_found("notification", notification_id)
        await repo.mark_read(notification_id)
        return await repo.get(notification_id)
