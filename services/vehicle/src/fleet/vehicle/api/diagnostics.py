"""Diagnostic routes: operators file and read fault reports."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query, status

from fleet.common.auth import OperatorPrincipal
from fleet.common.pagination import Page, PageDep, page_of
from fleet.vehicle.api.deps import DbDep
from fleet.vehicle.api.schemas import DiagnosticIn, DiagnosticOut
from fleet.vehicle.domain.diagnostics import Diagnostic, Severity
from fleet.vehicle.service import diagnostics as uc

router = APIRouter(prefix="/diagnostics", tags=["diagnostics"])


def _out(d: Diagnostic) -> DiagnosticOut:
    return DiagnosticOut(**asdict(d))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="File a fault report",
    responses={404: {"description": "Unknown vehicle"}},
)
async def report_diagnostic(body: DiagnosticIn, db: DbDep, _op: OperatorPrincipal) -> DiagnosticOut:
    d = await uc.report_diagnostic(db, body.vehicle_id, body.code, body.severity, body.message)
    return _out(d)


@router.get("", summary="Fault reports, newest first")
async def list_diagnostics(
    db: DbDep,
    _op: OperatorPrincipal,
    page: PageDep,
    vehicle_id: Annotated[uuid.UUID | None, Query()] = None,
    severity: Annotated[Severity | None, Query()] = None,
) -> Page[DiagnosticOut]:
    rows = await uc.list_diagnostics(db, vehicle_id, severity, page)
    return page_of(rows, page, _out, key=lambda d: (d.created_at, d.id))
