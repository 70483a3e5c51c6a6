"""Use cases: reading invoices (issued and settled from messages, see `service.billing`)."""

from __future__ import annotations

import uuid
from typing import Any

from fleet.billing.adapters.repository import SqlInvoiceRepository
from fleet.common.app import not_found
from fleet.common.auth import Principal
from fleet.common.db import Database
from fleet.common.pagination import PageParams


async def get_invoice(db: Database, who: Principal, invoice_id: uuid.UUID) -> Any:
    async with db.session() as session:
        row = await SqlInvoiceRepository(session).get(invoice_id)
    if row is None or not who.may_access(row.rider_id):
        raise not_found("invoice", invoice_id)
    return row


async def list_invoices(db: Database, who: Principal, page: PageParams) -> list[Any]:
    rider = None if who.is_operator else who.user_id
    async with db.session() as session:
        return await SqlInvoiceRepository(session).list(rider, page)
