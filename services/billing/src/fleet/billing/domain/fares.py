"""Tariffs and fares: pure rules, no I/O."""

from __future__ import annotations

import math
from dataclasses import dataclass

DEFAULT_MODEL = "default"
# Urban robotaxi average speed used to estimate duration from distance.
AVERAGE_SPEED_KPH = 30.0


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


DEFAULT_TARIFF = Tariff(DEFAULT_MODEL, base_cents=250, per_km_cents=120, per_min_cents=30)


def estimate_duration_min(distance_km: float, speed_kph: float = AVERAGE_SPEED_KPH) -> float:
    return round(distance_km / speed_kph * 60, 2)
