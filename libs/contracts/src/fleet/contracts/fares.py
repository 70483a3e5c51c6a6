"""The pricing rule, published with the contracts: one implementation for every service.

billing owns the tariffs and prices invoices with them; trip quotes a booking's fare locally from
its replica of them (`billing.tariff-changed`, see docs/adr/0007). Both use the functions here,
so a quote and an invoice of the same ride and tariff agree to the cent. Pure rules, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fleet.common.errors import InvalidInputError
from fleet.common.geo import Point, haversine_km

DEFAULT_MODEL = "default"
# Urban robotaxi average speed used to estimate duration from distance.
AVERAGE_SPEED_KPH = 30.0
# The longest ride a trip may cover (the trip service refuses longer completions too).
MAX_RIDE_KM = 2000


@dataclass(frozen=True, slots=True)
class Tariff:
    vehicle_model: str
    base_cents: int
    per_km_cents: int
    per_min_cents: int

    def fare_cents(self, distance_km: float, duration_min: float) -> int:
        """The fare rounded up to the cent: base + distance + time (seed: billing.calculate)."""
        raw = self.base_cents + self.per_km_cents * distance_km + self.per_min_cents * duration_min
        return math.ceil(round(raw, 6))


# What applies while no `default` tariff is stored (billing) or replicated (trip).
DEFAULT_TARIFF = Tariff(DEFAULT_MODEL, base_cents=250, per_km_cents=120, per_min_cents=30)


@dataclass(frozen=True, slots=True)
class Quote:
    fare_cents: int
    distance_km: float
    duration_min: float


class RideTooLong(InvalidInputError):
    """A ride longer than a trip may cover: 422 on `POST /quotes`, a refused booking."""

    def __init__(self, distance_km: float) -> None:
        super().__init__(
            f"a ride of {distance_km:.0f} km is longer than the {MAX_RIDE_KM} km a trip may cover",
            field="dropoff",
        )


def estimate_duration_min(distance_km: float, speed_kph: float = AVERAGE_SPEED_KPH) -> float:
    return round(distance_km / speed_kph * 60, 2)


def quote(tariff: Tariff, pickup: Point, dropoff: Point) -> Quote:
    """A straight-line estimate of the ride priced with `tariff`; `RideTooLong` past the limit."""
    distance = round(haversine_km(pickup.lat, pickup.lon, dropoff.lat, dropoff.lon), 3)
    if distance > MAX_RIDE_KM:
        raise RideTooLong(distance)
    duration = estimate_duration_min(distance)
    return Quote(tariff.fare_cents(distance, duration), distance, duration)
