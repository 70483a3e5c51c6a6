"""Tariff and quote routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from fleet.billing.api.deps import DbDep, RuntimeDep
from fleet.billing.api.schemas import QuoteIn, QuoteOut, TariffIn, TariffOut
from fleet.billing.service import tariffs as uc
from fleet.common.auth import CurrentPrincipal, OperatorPrincipal
from fleet.contracts.fares import Tariff

router = APIRouter(tags=["billing"])

# Letters, digits, `.`, `_`, `-` and inner spaces ("Model 3" is `/tariffs/Model%203`).
ModelPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9._-](?:[A-Za-z0-9._ -]*[A-Za-z0-9._-])?$",
        description="The vehicle model: letters, digits, `.`, `_`, `-` and inner spaces",
    ),
]


def _out(t: Tariff) -> TariffOut:
    return TariffOut(
        vehicle_model=t.vehicle_model,
        base_cents=t.base_cents,
        per_km_cents=t.per_km_cents,
        per_min_cents=t.per_min_cents,
    )


@router.get("/tariffs", summary="All tariffs (the `default` one applies to unknown models)")
async def list_tariffs(db: DbDep) -> list[TariffOut]:
    return [_out(t) for t in await uc.list_tariffs(db)]


@router.put("/tariffs/{vehicle_model}", summary="Create or replace a model's tariff")
async def put_tariff(
    vehicle_model: ModelPath, body: TariffIn, rt: RuntimeDep, _op: OperatorPrincipal
) -> TariffOut:
    tariff = Tariff(vehicle_model, body.base_cents, body.per_km_cents, body.per_min_cents)
    return _out(await uc.put_tariff(rt, tariff))


@router.post("/quotes", summary="Fare quote for a ride from pickup to dropoff")
async def quote(body: QuoteIn, db: DbDep, _who: CurrentPrincipal) -> QuoteOut:
    q = await uc.quote(db, body.pickup, body.dropoff, body.vehicle_model)
    return QuoteOut(fare_cents=q.fare_cents, distance_km=q.distance_km, duration_min=q.duration_min)
