"""Cursor pagination: `?limit=` (1..200, default 50) and an opaque `?cursor=`.

A cursor encodes the sort key and id of the last item returned (keyset pagination), so pages stay
stable while rows are inserted and no OFFSET scan is ever needed.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel
from sqlalchemy import ColumnElement, Select, tuple_

from fleet.common.errors import InvalidInputError

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


def encode_cursor(*values: Any) -> str:
    """Opaque cursor from the sort key values of the last item."""
    raw = json.dumps([str(v) for v in values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, parts: int) -> list[str]:
    """The values encoded by `encode_cursor`; 422 naming `cursor` if it is not one of ours."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise _bad_cursor() from exc
    if not isinstance(values, list) or len(values) != parts:
        raise _bad_cursor()
    if not all(isinstance(v, str) for v in values):
        raise _bad_cursor()
    return values


def _bad_cursor() -> InvalidInputError:
    err = InvalidInputError("cursor is not valid")
    err.extra["errors"] = [{"loc": ["query", "cursor"], "msg": "cursor is not valid"}]
    return err


@dataclass(frozen=True, slots=True)
class PageParams:
    limit: int
    cursor: str | None

    def decode(self, parts: int) -> list[str] | None:
        return decode_cursor(self.cursor, parts) if self.cursor else None

    def after(self) -> tuple[dt.datetime, uuid.UUID] | None:
        """The (created_at, id) keyset position encoded in the cursor, if any."""
        values = self.decode(2)
        if values is None:
            return None
        try:
            when = dt.datetime.fromisoformat(values[0])
            if when.tzinfo is None:
                raise ValueError("naive")
            return when, uuid.UUID(values[1])
        except ValueError as exc:
            raise _bad_cursor() from exc


async def page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> PageParams:
    return PageParams(limit, cursor)


PageDep = Annotated[PageParams, Depends(page_params)]


def paginate(
    rows: list[Any], limit: int, key: Callable[[Any], Any]
) -> tuple[list[Any], str | None]:
    """Split `limit + 1` fetched rows into a page and the cursor of the next one (if any)."""
    if len(rows) <= limit:
        return rows, None
    page = rows[:limit]
    return page, encode_cursor(*key(page[-1]))


def newest_first(
    stmt: Select[Any], created: ColumnElement[Any], ident: ColumnElement[Any], page: PageParams
) -> Select[Any]:
    """Order `stmt` newest first by (created, id) and apply the page's keyset position and limit."""
    after = page.after()
    if after is not None:
        stmt = stmt.where(tuple_(created, ident) < tuple_(*after))
    return stmt.order_by(created.desc(), ident.desc()).limit(page.limit + 1)


def page_of(
    rows: Sequence[Any], page: PageParams, item: Callable[[Any], T], key: Callable[[Any], Any]
) -> Page[T]:
    """A `Page` from the `limit + 1` rows fetched by `newest_first` (or any keyset query)."""
    chunk, cursor = paginate(list(rows), page.limit, key)
    return Page[T](items=[item(r) for r in chunk], next_cursor=cursor)
