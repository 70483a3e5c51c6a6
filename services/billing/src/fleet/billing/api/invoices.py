"""Invoice routes: riders see their own, operators all."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter

from fleet.billing.api.deps import DbDep
from fleet.billing.api.schemas import InvoiceOut
from fleet.billing.service import invoices as uc
from fleet.common.auth import CurrentPrincipal
from fleet.common.pagination import Page, PageDep, page_of

router = APIRouter(prefix="/invoices", tags=["billing"])


def _out(row: Any) -> InvoiceOut:
    return InvoiceOut.model_validate(row._mapping)


@router.get("", summary="Invoices, newest first (riders: their own)")
async def list_invoices(db: DbDep, who: CurrentPrincipal, page: PageDep) -> Page[InvoiceOut]:
    rows = await uc.list_invoices(db, who, page)
    return page_of(rows, page, _out, key=lambda r: (r.created_at, r.id))


@router.get(
    "/{invoice_id}",
    summary="One invoice (404 if it is someone else's)",
    responses={404: {"description": "No such invoice, or another rider's"}},
)
async def get_invoice(invoice_id: uuid.UUID, db: DbDep, who: CurrentPrincipal) -> InvoiceOut:
    return _out(await uc.get_invoice(db, who, invoice_id))
