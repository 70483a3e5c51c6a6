"""Dependency aliases of the billing API."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from fleet.common.app import runtime
from fleet.common.db import Database
from fleet.common.runtime import ServiceRuntime

SERVICE = "billing"


async def get_runtime(request: Request) -> ServiceRuntime:
    return runtime(request, SERVICE)


async def get_db(request: Request) -> Database:
    return runtime(request, SERVICE).db


DbDep = Annotated[Database, Depends(get_db)]
RuntimeDep = Annotated[ServiceRuntime, Depends(get_runtime)]
