"""SQL repository of diagnostic reports."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.common.pagination import PageParams, newest_first
from fleet.vehicle.adapters.tables import diagnostics
from fleet.vehicle.domain.diagnostics import Diagnostic, Severity


def _diagnostic(row: Any) -> Diagnostic:
    m = row._mapping
    return Diagnostic(
        m["id"], m["vehicle_id"], m["code"], Severity(m["severity"]), m["message"], m["created_at"]
    )


class SqlDiagnosticRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, diagnostic: Diagnostic) -> None:
        values = asdict(diagnostic) | {"severity": diagnostic.severity.value}
        await self.session.execute(diagnostics.insert().values(**values))

    async def list(
        self, vehicle_id: uuid.UUID | None, severity: Severity | None, page: PageParams
    ) -> list[Diagnostic]:
        """Newest first, one row more than the page to tell whether another page follows."""
        stmt = select(diagnostics)
        if vehicle_id is not None:
            stmt = stmt.where(diagnostics.c.vehicle_id == vehicle_id)
        if severity is not None:
            stmt = stmt.where(diagnostics.c.severity == severity.value)
        stmt = newest_first(stmt, diagnostics.c.created_at, diagnostics.c.id, page)
        return [_diagnostic(r) for r in await self.session.execute(stmt)]
