"""The credit wallet: balance, holds placed on it for trips, and their release or capture.

Invariants (also enforced by CHECK constraints): 0 <= held <= balance. `available` is what a new
hold may take. Every mutation bumps `version`, which the repository uses as an optimistic guard.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from fleet.user.domain.errors import (
    CaptureExceedsHold,
    HoldNotActive,
    InsufficientCredits,
    InvalidAmount,
)

HoldStatus = Literal["held", "released", "captured"]
LedgerKind = Literal["top_up", "capture"]


@dataclass(slots=True)
class Hold:
    """Credits reserved for one reference (a trip or saga id) until released or captured."""

    id: uuid.UUID
    user_id: uuid.UUID
    reference: uuid.UUID
    amount_cents: int
    status: HoldStatus = "held"
    captured_cents: int = 0

    @property
    def is_active(self) -> bool:
        return self.status == "held"


@dataclass(slots=True)
class Wallet:
    user_id: uuid.UUID
    balance_cents: int = 0
    held_cents: int = 0
    version: int = 0

    @property
    def available_cents(self) -> int:
        return self.balance_cents - self.held_cents

    def top_up(self, amount_cents: int) -> None:
        _require_positive(amount_cents)
        self.balance_cents += amount_cents
        self.version += 1

    def place_hold(self, hold_id: uuid.UUID, reference: uuid.UUID, amount_cents: int) -> Hold:
        """Reserve `amount_cents` of the available credits; refuse if they do not suffice."""
        _require_positive(amount_cents)
        if amount_cents > self.available_cents:
            raise InsufficientCredits.of(self.available_cents, amount_cents)
        self.held_cents += amount_cents
        self.version += 1
        return Hold(hold_id, self.user_id, reference, amount_cents)

    def release_hold(self, hold: Hold) -> None:
        """Give the whole hold back to the available credits."""
        self._require_own_active(hold)
        self.held_cents -= hold.amount_cents
        hold.status = "released"
        self.version += 1

    def capture_hold(self, hold: Hold, amount_cents: int) -> None:
        """Debit `amount_cents` (at most the hold); the rest of the hold is released."""
        self._require_own_active(hold)
        if amount_cents < 0:
            raise InvalidAmount(amount_cents)
        if amount_cents > hold.amount_cents:
            raise CaptureExceedsHold(
                f"capture of {amount_cents} exceeds the hold of {hold.amount_cents}"
            )
        self.held_cents -= hold.amount_cents
        self.balance_cents -= amount_cents
        hold.status = "captured"
        hold.captured_cents = amount_cents
        self.version += 1

    def settle_hold(self, hold: Hold, amount_cents: int) -> None:
        """Debit `amount_cents` for the hold's reference, from the hold first.

        Less than the hold: the rest is released. More: the available credits pay the excess, or
        InsufficientCredits is raised and nothing changes (a fare may exceed its quote).
        """
        self._require_own_active(hold)
        if amount_cents < 0:
            raise InvalidAmount(amount_cents)
        excess = amount_cents - hold.amount_cents
        if excess > self.available_cents:
            raise InsufficientCredits.of(hold.amount_cents + self.available_cents, amount_cents)
        self.held_cents -= hold.amount_cents
        self.balance_cents -= amount_cents
        hold.status = "captured"
        hold.captured_cents = min(amount_cents, hold.amount_cents)
        self.version += 1

    def _require_own_active(self, hold: Hold) -> None:
        if hold.user_id != self.user_id:
            raise ValueError("hold belongs to another wallet")
        if not hold.is_active:
            raise HoldNotActive(f"hold {hold.reference} is already {hold.status}")


def _require_positive(amount_cents: int) -> None:
    if amount_cents <= 0:
        raise InvalidAmount(amount_cents)
