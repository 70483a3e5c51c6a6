"""The pricing rule billing invoices with and trip quotes bookings with."""

from __future__ import annotations

import pytest

from fleet.common.geo import Point
from fleet.contracts.fares import (
    DEFAULT_TARIFF,
    MAX_RIDE_KM,
    RideTooLong,
    Tariff,
    estimate_duration_min,
    quote,
)

SEOUL = Point(lat=37.5665, lon=126.9780)
GANGNAM = Point(lat=37.4979, lon=127.0276)


def test_a_fare_is_base_plus_distance_plus_time_rounded_up_to_the_cent() -> None:
    tariff = Tariff("Ioniq5", base_cents=250, per_km_cents=120, per_min_cents=30)
    assert tariff.fare_cents(5.0, 12.0) == 250 + 600 + 360
    assert tariff.fare_cents(0.001, 0.0) == 251  # 250.12 → 251
    assert tariff.fare_cents(0.0, 0.0) == 250


def test_a_quote_prices_the_straight_line_at_the_average_urban_speed() -> None:
    q = quote(DEFAULT_TARIFF, SEOUL, GANGNAM)
    assert 8.5 < q.distance_km < 9.0
    assert q.duration_min == estimate_duration_min(q.distance_km) == round(q.distance_km * 2, 2)
    assert q.fare_cents == DEFAULT_TARIFF.fare_cents(q.distance_km, q.duration_min)


def test_a_ride_longer_than_a_trip_may_cover_is_refused_naming_the_dropoff() -> None:
    with pytest.raises(RideTooLong) as refused:
        quote(DEFAULT_TARIFF, SEOUL, Point(lat=40.7128, lon=-74.0060))
    assert f"longer than the {MAX_RIDE_KM} km a trip may cover" in refused.value.detail
    assert refused.value.extra["errors"][0]["loc"] == ["body", "dropoff"]
