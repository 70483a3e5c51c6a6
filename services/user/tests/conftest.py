"""Fixtures of the user service's tests (the shared ones live in the root conftest)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from fleet.common.db import Database

ProblemCheck = Callable[..., dict[str, Any]]


def _expect_problem(r: httpx.Response, status: int, field: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    if field is not None:
        locs = [e["loc"] for e in body.get("errors", [])]
        assert any(loc[-1] == field for loc in locs), locs
    return body


@pytest.fixture
def expect_problem() -> ProblemCheck:
    """`expect_problem(response, status, field=None)`: a problem document, naming `field`."""
    return _expect_problem


@pytest.fixture
async def user_db(client: httpx.AsyncClient, app: FastAPI) -> Database:
    """The running app's user database, for arranging state the API cannot create."""
    db: Database = app.state.fleet.services["user"].db
    return db
