"""Use cases: tariffs and fare quotes."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from fleet.billing.adapters.repository import SqlTariffRepository
from fleet.billing.domain.fares import DEFAULT_MODEL, DEFAULT_TARIFF, Tariff, estimate_duration_min
from fleet.common.db import Database
from fleet.common.errors import InvalidInputError
from fleet.common.geo import Point, haversine_km


async def list_tariffs(db: Database) -> list[Tariff]:
    async with db.session() as session:
        stored = await SqlTariffRepository(session).list()
    if not any(t.vehicle_model == DEFAULT_MODEL for t in stored):
        stored.insert(0, DEFAULT_TARIFF)
    return stored


async def tariff_for(db: Database, vehicle_model: str | None) -> Tariff:
    """The model's tariff, else the stored default, else the built-in default."""
    async with db.session() as session:
        return await tariff_in(session, vehicle_model)


async def tariff_in(session: AsyncSession, vehicle_model: str | None) -> Tariff:
    """`tariff_for` inside the caller's transaction (message handlers)."""
    repo = SqlTariffRepository(session)
    for model in (vehicle_model, DEFAULT_MODEL):
        if model and (tariff := await repo.get(model)):
            return tariff
    return DEFAULT_TARIFF


async def put_tariff(db: Database, tariff: Tariff) -> Tariff:
    async with db.transaction() as session:
        await SqlTariffRepository(session).put(tariff)
    return tariff


# The longest ride a trip may cover (the trip service refuses longer completions too).
MAX_RIDE_KM = 2000


async def quote(
    db: Database, pickup: Point, dropoff: Point, vehicle_model: str | None = None
) -> tuple[int, float, float]:
    """(fare_cents, distance_km, duration_min) of a straight-line estimate of the ride."""
    async with db.session() as session:
        return await quote_in(session, pickup, dropoff, vehicle_model)


async def quote_in(
    session: AsyncSession, pickup: Point, dropoff: Point, vehicle_model: str | None = None
) -> tuple[int, float, float]:
    """`quote` inside the caller's transaction (the saga's quote-fare step)."""
    distance = round(haversine_km(pickup.lat, pickup.lon, dropoff.lat, dropoff.lon), 3)
    if distance > MAX_RIDE_KM:
        raise InvalidInputError(
            f"a ride of {distance:.0f} km is longer than the {MAX_RIDE_KM} km a trip may cover",
            field="dropoff",
        )
    duration = estimate_duration_min(distance)
    tariff = await tariff_in(session, vehicle_model)
    return tariff.fare_cents(distance, duration), distance, duration
