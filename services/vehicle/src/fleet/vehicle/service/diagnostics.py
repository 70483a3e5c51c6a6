"""Use cases: filing and reading diagnostic reports."""

from __future__ import annotations

import uuid

from fleet.common.app import not_found
from fleet.common.db import Database, utcnow
from fleet.common.pagination import PageParams
from fleet.vehicle.adapters.diagnostics import SqlDiagnosticRepository
from fleet.vehicle.adapters.vehicles import SqlVehicleRepository
from fleet.vehicle.domain.diagnostics import Diagnostic, Severity


async def report_diagnostic(
    db: Database, vehicle_id: uuid.UUID, code: str, severity: Severity, message: str
) -> Diagnostic:
    diagnostic = Diagnostic(uuid.uuid4(), vehicle_id, code, severity, message, utcnow())
    async with db.transaction() as session:
        if await SqlVehicleRepository(session).get(vehicle_id) is None:
            raise not_found("vehicle", vehicle_id)
        await SqlDiagnosticRepository(session).add(diagnostic)
    return diagnostic


async def list_diagnostics(
    db: Database, vehicle_id: uuid.UUID | None, severity: Severity | None, page: PageParams
) -> list[Diagnostic]:
    async with db.session() as session:
        return await SqlDiagnosticRepository(session).list(vehicle_id, severity, page)
