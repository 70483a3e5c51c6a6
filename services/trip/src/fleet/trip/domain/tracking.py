"""Tracking points: where a trip's vehicle was, and when."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class TrackingPoint:
    trip_id: uuid.UUID
    vehicle_id: uuid.UUID
    lat: float
    lon: float
    recorded_at: dt.datetime
    speed_kph: float | None = None
    id: uuid.UUID = field(default_factory=uuid.uuid4)
