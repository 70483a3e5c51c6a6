"""Telemetry readings and the rules for accepting them."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

MAX_SPEED_KPH = 300.0
MAX_BATCH = 1000
# Vehicle clocks drift; more than this in the future is a broken clock, not a reading.
MAX_CLOCK_SKEW = dt.timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Reading:
    lat: float
    lon: float
    speed_kph: float
    battery_pct: float
    recorded_at: dt.datetime


def check_recorded_at(recorded_at: dt.datetime, now: dt.datetime) -> dt.datetime:
    """The reading time in UTC; ValueError if it is naive or too far in the future."""
    if recorded_at.tzinfo is None or recorded_at.utcoffset() is None:
        raise ValueError("recorded_at needs a time zone")
    if recorded_at - now > MAX_CLOCK_SKEW:
        raise ValueError("recorded_at is more than 5 minutes in the future")
    return recorded_at.astimezone(dt.UTC)


def latest(readings: Sequence[Reading]) -> Reading | None:
    """The most recent reading of a batch (batches may arrive in any order)."""
    return max(readings, key=lambda r: r.recorded_at, default=None)


def newest_by_vehicle(rows: Iterable[tuple[uuid.UUID, Reading]]) -> dict[uuid.UUID, Reading]:
    """Each vehicle's most recent reading among `rows` (a stored batch moves each vehicle once)."""
    newest: dict[uuid.UUID, Reading] = {}
    for vehicle_id, reading in rows:
        known = newest.get(vehicle_id)
        if known is None or reading.recorded_at > known.recorded_at:
            newest[vehicle_id] = reading
    return newest
