"""The caller's notifications (any role sees only their own)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter

from fleet.common.auth import CurrentPrincipal
from fleet.common.pagination import Page, PageDep, page_of
from fleet.user.api.deps import DbDep
from fleet.user.api.schemas import NotificationOut
from fleet.user.service import notifications as uc

router = APIRouter(prefix="/notifications", tags=["notifications"])


def _out(row: Any) -> NotificationOut:
    return NotificationOut.model_validate(row._mapping)


@router.get("", summary="The caller's notifications, newest first")
async def list_notifications(
    db: DbDep, who: CurrentPrincipal, page: PageDep
) -> Page[NotificationOut]:
    rows = await uc.list_notifications(db, who, page)
    return page_of(rows, page, _out, key=lambda r: (r.created_at, r.id))


@router.post(
    "/{notification_id}/read",
    summary="Mark one of the caller's notifications read",
    responses={404: {"description": "The caller has no such notification"}},
)
async def mark_read(
    notification_id: uuid.UUID, db: DbDep, who: CurrentPrincipal
) -> NotificationOut:
    return _out(await uc.mark_read(db, who, notification_id))
