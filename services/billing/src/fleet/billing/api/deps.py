"""Dependency aliases of the billing API."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from fleet.common.app import runtime
from fleet.common.db import Database

SERVICE = "billing"


async def get_db(request: Request) -> Database:
    return runtime(request, SERVICE).db


DbDep = Annotated[Database, Depends(get_db)]
