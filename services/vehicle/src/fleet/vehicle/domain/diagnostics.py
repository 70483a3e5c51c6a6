"""Fault reports a vehicle or an operator files about a vehicle."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    id: uuid.UUID
    vehicle_id: uuid.UUID
    code: str
    severity: Severity
    message: str
    created_at: dt.datetime
