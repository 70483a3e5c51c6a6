"""Payment metrics' vocabulary: bounded label values for amounts and failure causes."""

from __future__ import annotations

import re
from enum import StrEnum

PAYMENT_METHOD = "credits"

# Upper bounds in currency units (not cents), as in the seed's PaymentService.getAmountRange.
_AMOUNT_BOUNDS = ((10, "0-10"), (50, "10-50"), (100, "50-100"))
_OVER = "100+"

# Capture failures arrive as free text (user's refusal); a label needs a small, fixed set of values.
_ERROR_TYPES = (
    ("insufficient_credits", re.compile(r"insufficient|not enough", re.IGNORECASE)),
    ("already_settled", re.compile(r"already settled", re.IGNORECASE)),
    ("hold_missing", re.compile(r"\bhold|\bheld\b", re.IGNORECASE)),
    ("invalid_amount", re.compile(r"amount", re.IGNORECASE)),
)
OTHER_ERROR = "other"


def amount_range(amount_cents: int) -> str:
    """The amount's bucket label, e.g. 1_250 cents -> "10-50"."""
    units = amount_cents / 100
    for upper, label in _AMOUNT_BOUNDS:
        if units < upper:
            return label
    return _OVER


def error_type(reason: str) -> str:
    """A bounded classification of a capture failure's free-text reason."""
    for label, pattern in _ERROR_TYPES:
        if pattern.search(reason):
            return label
    return OTHER_ERROR


class PaymentStatus(StrEnum):
    CAPTURED = "captured"
    FAILED = "failed"
