"""Finding vehicles around a point: a bounding box narrows, the great-circle distance decides."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from fleet.common.geo import bounding_box, haversine_km

from .vehicles import Vehicle

DEFAULT_RADIUS_KM = 5.0
MAX_RADIUS_KM = 500.0
# How far a booking looks for a vehicle around the pickup point.
BOOKING_RADIUS_KM = 50.0


@dataclass(frozen=True, slots=True)
class Circle:
    lat: float
    lon: float
    radius_km: float = DEFAULT_RADIUS_KM

    def box(self) -> tuple[float, float, float, float]:
        """(min_lat, max_lat, min_lon, max_lon): the index-friendly pre-filter."""
        return bounding_box(self.lat, self.lon, self.radius_km)

    def distance_km(self, lat: float, lon: float) -> float:
        return haversine_km(self.lat, self.lon, lat, lon)

    def contains(self, lat: float, lon: float) -> bool:
        return self.distance_km(lat, lon) <= self.radius_km

    @property
    def is_local(self) -> bool:
        """Away from the antimeridian and the poles: its box neither wraps nor spans every
        longitude, so a flat-earth distance ranks the points inside as the great circle does."""
        _min_lat, _max_lat, min_lon, max_lon = self.box()
        return min_lon >= -180 and max_lon <= 180 and max_lon - min_lon < 360


def by_distance(candidates: Iterable[Vehicle], area: Circle) -> list[Vehicle]:
    """The vehicles inside the circle, closest first (ties broken by id, so the order is stable)."""
    inside = [
        (area.distance_km(v.lat, v.lon), str(v.id), v)
        for v in candidates
        if area.contains(v.lat, v.lon)
    ]
    return [v for _d, _id, v in sorted(inside, key=lambda t: (t[0], t[1]))]


def nearest(candidates: Iterable[Vehicle], area: Circle) -> Vehicle | None:
    """The closest vehicle inside the circle."""
    ranked = by_distance(candidates, area)
    return ranked[0] if ranked else None
