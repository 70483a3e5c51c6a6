"""The rider's own wallet. Holds are not on the REST surface: the booking saga drives them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header

from fleet.common.auth import RiderPrincipal
from fleet.common.openapi import Responses
from fleet.common.text import ONE_LINE_PATTERN
from fleet.user.api.deps import DbDep
from fleet.user.api.schemas import TopUpIn, WalletOut
from fleet.user.service import wallets as uc

router = APIRouter(prefix="/wallet", tags=["wallet"])

NO_WALLET: Responses = {404: {"description": "The caller has no wallet"}}

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=128,
        pattern=ONE_LINE_PATTERN,
        description="Retries with the same key replay the first answer and never credit twice",
    ),
]


@router.get("", summary="The caller's balance, held and available credits", responses=NO_WALLET)
async def get_wallet(db: DbDep, who: RiderPrincipal) -> WalletOut:
    return WalletOut.of(await uc.get_wallet(db, who.user_id))


@router.post(
    "/top-up",
    summary="Add credits to the caller's wallet",
    responses={
        **NO_WALLET,
        409: {"description": "Idempotency-Key used for another amount, or a concurrent change"},
    },
)
async def top_up(
    body: TopUpIn, db: DbDep, who: RiderPrincipal, idempotency_key: IdempotencyKey = None
) -> WalletOut:
    return WalletOut.of(await uc.top_up(db, who.user_id, body.amount_cents, idempotency_key))
