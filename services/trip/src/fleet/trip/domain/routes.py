"""Route estimation: a straight-line route until a routing engine is plugged in.

Distance is the great-circle distance, duration assumes the average urban speed fare quotes use
(`fleet.contracts.fares`, so a route and its quote agree), and the polyline (Google's encoded
polyline format, precision 5) traces the straight segment with a few points.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from fleet.common.geo import haversine_km
from fleet.contracts.fares import AVERAGE_SPEED_KPH
from fleet.trip.domain.trips import Location

POLYLINE_PRECISION = 5
# Road-aware estimate (feature flag `route_estimator_v2`): streets are longer than the straight
# line (a typical urban detour factor) and boarding takes a moment.
ROAD_DETOUR_FACTOR = 1.3
BOARDING_MIN = 1.5
ROUTE_POINTS = 6


@dataclass(frozen=True, slots=True)
class RouteEstimate:
    distance_km: float
    duration_min: float
    polyline: str
    estimator: str = "straight-line"


def estimate_route(
    pickup: Location,
    dropoff: Location,
    speed_kph: float = AVERAGE_SPEED_KPH,
    *,
    road_aware: bool = False,
) -> RouteEstimate:
    """Distance (km, 3 decimals), duration (min, 2 decimals) and polyline of the ride."""
    distance = haversine_km(pickup.lat, pickup.lon, dropoff.lat, dropoff.lon)
    overhead = 0.0
    if road_aware:
        distance *= ROAD_DETOUR_FACTOR
        overhead = BOARDING_MIN
    distance = round(distance, 3)
    duration = round(distance / speed_kph * 60 + overhead, 2)
    polyline = encode_polyline(interpolate(pickup, dropoff, ROUTE_POINTS))
    return RouteEstimate(
        distance, duration, polyline, "road-aware" if road_aware else "straight-line"
    )


def interpolate(start: Location, end: Location, points: int) -> list[Location]:
    """`points` evenly spaced positions from start to end, both included.

    Longitude steps the short way round, so a ride across the antimeridian does not circle
    the globe.
    """
    if points < 2:
        raise ValueError("a segment needs at least two points")
    dlon = (end.lon - start.lon + 180.0) % 360.0 - 180.0
    steps = points - 1
    out = [start]
    for i in range(1, steps):
        f = i / steps
        out.append(Location(start.lat + (end.lat - start.lat) * f, _wrap(start.lon + dlon * f)))
    out.append(end)
    return out


def _wrap(lon: float) -> float:
    return (lon + 180.0) % 360.0 - 180.0 if not -180.0 <= lon <= 180.0 else lon


def _round_half_away(value: float) -> int:
    # The reference encoder rounds halves away from zero; Python's round() would not.
    return int(math.copysign(math.floor(abs(value) + 0.5), value))


def _encode_value(delta: int) -> str:
    shifted = ~(delta << 1) if delta < 0 else delta << 1
    chunks = []
    while shifted >= 0x20:
        chunks.append(chr((0x20 | (shifted & 0x1F)) + 63))
        shifted >>= 5
    chunks.append(chr(shifted + 63))
    return "".join(chunks)


def encode_polyline(points: Iterable[Location], precision: int = POLYLINE_PRECISION) -> str:
    """Google's encoded polyline of `points` (latitude first)."""
    factor = 10**precision
    prev_lat = prev_lon = 0
    out = []
    for point in points:
        lat, lon = _round_half_away(point.lat * factor), _round_half_away(point.lon * factor)
        out.append(_encode_value(lat - prev_lat))
        out.append(_encode_value(lon - prev_lon))
        prev_lat, prev_lon = lat, lon
    return "".join(out)


def decode_polyline(encoded: str, precision: int = POLYLINE_PRECISION) -> list[Location]:
    """The positions of an encoded polyline; `ValueError` if it is not one."""
    values = _decode_values(encoded)
    if len(values) % 2:
        raise ValueError("polyline has an odd number of values")
    factor = 10**precision
    points, lat, lon = [], 0, 0
    for i in range(0, len(values), 2):
        lat, lon = lat + values[i], lon + values[i + 1]
        points.append(Location(lat / factor, lon / factor))
    return points


def _decode_values(encoded: str) -> Sequence[int]:
    values: list[int] = []
    shift = acc = 0
    for char in encoded:
        chunk = ord(char) - 63
        if not 0 <= chunk < 0x40:
            raise ValueError(f"invalid polyline character {char!r}")
        acc |= (chunk & 0x1F) << shift
        shift += 5
        if chunk < 0x20:
            values.append(~(acc >> 1) if acc & 1 else acc >> 1)
            shift = acc = 0
    if shift:
        raise ValueError("polyline ends inside a value")
    return values
