"""Route estimation and the encoded polyline."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleet.common.geo import haversine_km
from fleet.trip.domain.routes import (
    ROUTE_POINTS,
    decode_polyline,
    encode_polyline,
    estimate_route,
    interpolate,
)
from fleet.trip.domain.trips import Location

SEOUL_CITY_HALL = Location(37.5665, 126.9780)
GANGNAM = Location(37.4979, 127.0276)


def test_polyline_matches_googles_documented_example() -> None:
    points = [Location(38.5, -120.2), Location(40.7, -120.95), Location(43.252, -126.453)]
    assert encode_polyline(points) == "_p~iF~ps|U_ulLnnqC_mqNvxq`@"


def test_decoding_googles_example_gives_the_points_back() -> None:
    assert decode_polyline("_p~iF~ps|U_ulLnnqC_mqNvxq`@") == [
        Location(38.5, -120.2),
        Location(40.7, -120.95),
        Location(43.252, -126.453),
    ]


@pytest.mark.parametrize("garbage", ["_p~iF~ps|U_", "abc\x00", "_p~iF"])
def test_decoding_garbage_is_refused(garbage: str) -> None:
    with pytest.raises(ValueError, match="polyline"):
        decode_polyline(garbage)


coords = st.builds(
    Location,
    st.floats(min_value=-90, max_value=90, allow_nan=False),
    st.floats(min_value=-180, max_value=180, allow_nan=False),
)


@given(st.lists(coords, min_size=1, max_size=20))
def test_polyline_round_trips_to_five_decimals(points: list[Location]) -> None:
    decoded = decode_polyline(encode_polyline(points))
    assert len(decoded) == len(points)
    for got, want in zip(decoded, points, strict=True):
        assert abs(got.lat - want.lat) <= 0.5e-5 + 1e-9
        assert abs(got.lon - want.lon) <= 0.5e-5 + 1e-9


def test_route_distance_is_great_circle_and_duration_assumes_30_kph() -> None:
    route = estimate_route(SEOUL_CITY_HALL, GANGNAM)
    expected = haversine_km(37.5665, 126.9780, 37.4979, 127.0276)
    assert route.distance_km == pytest.approx(expected, abs=0.001)
    assert 8.0 < route.distance_km < 9.5
    assert route.duration_min == pytest.approx(route.distance_km * 2, abs=0.01)


def test_route_polyline_runs_straight_from_pickup_to_dropoff() -> None:
    points = decode_polyline(estimate_route(SEOUL_CITY_HALL, GANGNAM).polyline)
    assert len(points) == ROUTE_POINTS
    assert points[0] == SEOUL_CITY_HALL
    assert points[-1] == GANGNAM
    lats = [p.lat for p in points]
    assert lats == sorted(lats, reverse=True)


def test_same_pickup_and_dropoff_is_a_zero_length_route() -> None:
    route = estimate_route(GANGNAM, GANGNAM)
    assert (route.distance_km, route.duration_min) == (0.0, 0.0)
    assert set(decode_polyline(route.polyline)) == {GANGNAM}


def test_a_route_across_the_antimeridian_takes_the_short_way() -> None:
    points = interpolate(Location(0.0, 179.0), Location(0.0, -179.0), 5)
    assert [round(p.lon, 6) for p in points] == [179.0, 179.5, 180.0, -179.5, -179.0]
    assert estimate_route(Location(0.0, 179.0), Location(0.0, -179.0)).distance_km < 223


def test_interpolation_needs_two_points() -> None:
    with pytest.raises(ValueError, match="two points"):
        interpolate(GANGNAM, SEOUL_CITY_HALL, 1)
