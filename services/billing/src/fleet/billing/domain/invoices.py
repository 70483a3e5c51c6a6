"""Invoices: the ride's measures they are computed from and how payment outcomes change them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

# Longer rides than these are data errors, not trips a robotaxi could have made.
MAX_DISTANCE_KM = 5_000.0
MAX_DURATION_MIN = 7 * 24 * 60.0
MAX_REASON_CHARS = 500


class InvoiceStatus(StrEnum):
    ISSUED = "issued"
    PAID = "paid"
    FAILED = "failed"


class InvalidRide(ValueError):
    """A completed trip whose measures cannot be billed (negative, infinite, absurd)."""


@dataclass(frozen=True, slots=True)
class RideMeasures:
    distance_km: float
    duration_min: float

    def __post_init__(self) -> None:
        for name, value, limit in (
            ("distance_km", self.distance_km, MAX_DISTANCE_KM),
            ("duration_min", self.duration_min, MAX_DURATION_MIN),
        ):
            if not math.isfinite(value) or not 0 <= value <= limit:
                raise InvalidRide(f"{name} must be between 0 and {limit:g}, got {value!r}")


def after_capture(current: InvoiceStatus, captured: bool) -> InvoiceStatus | None:
    """The status a capture outcome leads to, or None when it changes nothing.

    Paid is final: a late or duplicated failure must not undo money already taken. A success
    after a failure (the capture was retried) still pays the invoice.
    """
    if current is InvoiceStatus.PAID:
        return None
    if captured:
        return InvoiceStatus.PAID
    return InvoiceStatus.FAILED if current is InvoiceStatus.ISSUED else None


def failure_reason(reason: str) -> str:
    """The reason as stored on the invoice (bounded, never empty)."""
    text = reason.strip() or "unknown"
    return text[:MAX_REASON_CHARS]
