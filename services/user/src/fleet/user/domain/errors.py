"""Errors of the user domain. They are FleetErrors so that one reaching an edge renders as a
problem document instead of a 500; the saga handlers map them to failure replies."""

from __future__ import annotations

from fleet.common.errors import ConflictError, InvalidInputError


class InsufficientCredits(ConflictError):
    """The wallet's available credits do not cover the requested hold."""

    title = "Insufficient Credits"
    slug = "insufficient-credits"

    @classmethod
    def of(cls, available_cents: int, needed_cents: int) -> InsufficientCredits:
        return cls(f"insufficient credits: available {available_cents}, needed {needed_cents}")


class HoldNotActive(ConflictError):
    """The hold was already released or captured, so it cannot change any more."""

    title = "Hold Not Active"
    slug = "hold-not-active"


class CaptureExceedsHold(ConflictError):
    """More was to be captured than the hold reserved."""

    title = "Capture Exceeds Hold"
    slug = "capture-exceeds-hold"


class InvalidAmount(InvalidInputError):
    """A money amount that is zero or negative where a positive one is required."""

    def __init__(self, amount_cents: int) -> None:
        super().__init__(f"amount must be positive, got {amount_cents}", field="amount_cents")
