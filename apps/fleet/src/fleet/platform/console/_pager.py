"""Pager links over the API's cursors, which only lead forward: next, previous and first page.

The way back travels in the page's own URL: `back` (repeated) holds the cursors of the pages
before this one, oldest first, "" standing for the first page (no cursor). Following *Next*
appends this page's cursor, *Previous* pops the last one. The trail keeps at most `MAX_TRAIL`
pages, dropping the oldest: past that an operator still has *First page*. A `back` value is only
ever sent to the API again as its `cursor`, and a trail that is too long or holds anything but
cursor characters is ignored whole (a partial trail would lead to the wrong page).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request

from fleet.platform.console._security import base_path

MAX_TRAIL = 20
# The API's cursors are unpadded url-safe base64 of at most 512 characters (its `max_length`);
# padding is let through should an implementation keep it.
CURSOR = re.compile(r"[A-Za-z0-9_=-]{0,512}")


def trail(request: Request) -> list[str]:
    """The cursors of the pages before this one, or [] if the query carries no valid trail."""
    back = request.query_params.getlist("back")
    if not request.query_params.get("cursor"):
        return []  # the first page has nothing before it
    if len(back) > MAX_TRAIL or not all(CURSOR.fullmatch(c) for c in back):
        return []
    return back


def pager(request: Request, path: str, page: dict[str, Any], **filters: str) -> dict[str, str]:
    """Links to the next page (the API's cursor), the previous one (from the trail) and the
    first, each keeping the filters."""
    here = base_path(request) + path
    kept = [(k, v) for k, v in filters.items() if v]
    cursor = request.query_params.get("cursor") or ""
    before = trail(request)

    def link(to: str, back: list[str]) -> str:
        query = [*kept, *([("cursor", to)] if to else []), *(("back", c) for c in back)]
        return f"{here}?{urlencode(query)}" if query else here

    links: dict[str, str] = {}
    if page.get("next_cursor"):
        links["next"] = link(str(page["next_cursor"]), [*before, cursor][-MAX_TRAIL:])
    if cursor:
        links["first"] = link("", [])
        if before:
            links["previous"] = link(before[-1], before[:-1])
    return links
