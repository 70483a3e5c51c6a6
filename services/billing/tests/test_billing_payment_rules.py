"""Pure rules behind invoices and payment metrics (no I/O)."""

from __future__ import annotations

import math

import pytest

from fleet.billing.domain.invoices import (
    InvalidRide,
    InvoiceStatus,
    RideMeasures,
    after_capture,
    failure_reason,
)
from fleet.billing.domain.payments import amount_range, error_type

ISSUED, PAID, FAILED = InvoiceStatus.ISSUED, InvoiceStatus.PAID, InvoiceStatus.FAILED


@pytest.mark.parametrize(
    ("current", "captured", "expected"),
    [
        (ISSUED, True, PAID),
        (ISSUED, False, FAILED),
        (FAILED, True, PAID),  # a retried capture went through
        (FAILED, False, None),  # already failed: nothing new to say
        (PAID, True, None),  # a duplicate answer
        (PAID, False, None),  # a stale failure never undoes a payment
    ],
)
def test_capture_outcomes_move_invoices_forward_only(
    current: InvoiceStatus, captured: bool, expected: InvoiceStatus | None
) -> None:
    assert after_capture(current, captured) is expected


@pytest.mark.parametrize(
    ("cents", "label"),
    [(0, "0-10"), (999, "0-10"), (1_000, "10-50"), (4_999, "10-50"), (5_000, "50-100"),
     (9_999, "50-100"), (10_000, "100+"), (10**9, "100+")],
)  # fmt: skip
def test_amount_ranges_are_in_currency_units(cents: int, label: str) -> None:
    assert amount_range(cents) == label


@pytest.mark.parametrize(
    ("reason", "label"),
    [
        ("insufficient credits: available 100, needed 11230", "insufficient_credits"),
        ("no credits are held for trip 1 of rider 2", "hold_missing"),
        ("the credits held for trip 1 were already released", "hold_missing"),
        ("trip 1 was already settled for 500", "already_settled"),
        ("amount must be positive", "invalid_amount"),
        ("'; DROP TABLE x; --", "other"),
        ("", "other"),
    ],
)
def test_failure_reasons_map_to_a_few_error_types(reason: str, label: str) -> None:
    assert error_type(reason) == label


@pytest.mark.parametrize(
    ("distance", "duration"),
    [(-0.1, 1), (1, -1), (math.inf, 1), (1, math.nan), (5_000.1, 1), (1, 7 * 24 * 60 + 1)],
)
def test_impossible_rides_cannot_be_billed(distance: float, duration: float) -> None:
    with pytest.raises(InvalidRide):
        RideMeasures(distance, duration)


def test_a_zero_ride_is_billable() -> None:
    assert RideMeasures(0, 0) == RideMeasures(0.0, 0.0)


def test_failure_reasons_are_bounded_and_never_empty() -> None:
    assert failure_reason("  ") == "unknown"
    assert failure_reason("x" * 600) == "x" * 500
    assert failure_reason("'; DROP TABLE x; --") == "'; DROP TABLE x; --"
