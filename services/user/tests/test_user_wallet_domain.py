from __future__ import annotations

import uuid

import pytest

from fleet.user.domain.errors import (
    CaptureExceedsHold,
    HoldNotActive,
    InsufficientCredits,
    InvalidAmount,
)
from fleet.user.domain.users import normalize_email
from fleet.user.domain.wallet import Wallet


def _wallet(balance: int = 100) -> Wallet:
    w = Wallet(uuid.uuid4())
    w.top_up(balance)
    return w


def test_top_up_raises_balance_and_version() -> None:
    w = Wallet(uuid.uuid4())
    w.top_up(250)
    assert (w.balance_cents, w.held_cents, w.available_cents, w.version) == (250, 0, 250, 1)


@pytest.mark.parametrize("amount", [0, -1])
def test_top_up_refuses_non_positive_amounts(amount: int) -> None:
    w = _wallet()
    with pytest.raises(InvalidAmount):
        w.top_up(amount)
    assert w.balance_cents == 100


def test_hold_reduces_available_but_not_balance() -> None:
    w = _wallet()
    hold = w.place_hold(uuid.uuid4(), uuid.uuid4(), 30)
    assert (w.balance_cents, w.held_cents, w.available_cents) == (100, 30, 70)
    assert hold.status == "held"
    assert hold.amount_cents == 30


def test_hold_beyond_available_is_refused_and_changes_nothing() -> None:
    w = _wallet()
    w.place_hold(uuid.uuid4(), uuid.uuid4(), 80)
    before = (w.balance_cents, w.held_cents, w.version)
    with pytest.raises(InsufficientCredits):
        w.place_hold(uuid.uuid4(), uuid.uuid4(), 21)
    assert (w.balance_cents, w.held_cents, w.version) == before


def test_hold_of_exactly_the_available_amount_is_allowed() -> None:
    w = _wallet()
    w.place_hold(uuid.uuid4(), uuid.uuid4(), 100)
    assert w.available_cents == 0


def test_release_returns_the_held_amount() -> None:
    w = _wallet()
    hold = w.place_hold(uuid.uuid4(), uuid.uuid4(), 40)
    w.release_hold(hold)
    assert (w.balance_cents, w.held_cents, hold.status) == (100, 0, "released")


def test_capture_of_part_debits_it_and_releases_the_rest() -> None:
    w = _wallet()
    hold = w.place_hold(uuid.uuid4(), uuid.uuid4(), 40)
    w.capture_hold(hold, 25)
    assert (w.balance_cents, w.held_cents, w.available_cents) == (75, 0, 75)
    assert (hold.status, hold.captured_cents) == ("captured", 25)


def test_capture_beyond_the_hold_is_refused() -> None:
    w = _wallet()
    hold = w.place_hold(uuid.uuid4(), uuid.uuid4(), 40)
    with pytest.raises(CaptureExceedsHold):
        w.capture_hold(hold, 41)
    assert (w.balance_cents, w.held_cents, hold.status) == (100, 40, "held")


def test_a_settled_hold_cannot_be_released_or_captured_again() -> None:
    w = _wallet()
    hold = w.place_hold(uuid.uuid4(), uuid.uuid4(), 40)
    w.capture_hold(hold, 10)
    with pytest.raises(HoldNotActive):
        w.release_hold(hold)
    with pytest.raises(HoldNotActive):
        w.capture_hold(hold, 10)
    assert (w.balance_cents, w.held_cents) == (90, 0)


def test_settle_within_the_hold_debits_the_amount_and_releases_the_rest() -> None:
    w = _wallet()
    hold = w.place_hold(uuid.uuid4(), uuid.uuid4(), 40)
    w.settle_hold(hold, 25)
    assert (w.balance_cents, w.held_cents, w.available_cents) == (75, 0, 75)
    assert (hold.status, hold.captured_cents) == ("captured", 25)


def test_settle_beyond_the_hold_takes_the_excess_from_the_available_credits() -> None:
    w = _wallet()
    hold = w.place_hold(uuid.uuid4(), uuid.uuid4(), 40)
    w.settle_hold(hold, 100)
    assert (w.balance_cents, w.held_cents, w.available_cents) == (0, 0, 0)
    assert (hold.status, hold.captured_cents) == ("captured", 40)


def test_settle_beyond_hold_and_available_is_refused_and_changes_nothing() -> None:
    w = _wallet()
    other = w.place_hold(uuid.uuid4(), uuid.uuid4(), 30)
    hold = w.place_hold(uuid.uuid4(), uuid.uuid4(), 40)
    with pytest.raises(InsufficientCredits, match="available 70, needed 71"):
        w.settle_hold(hold, 71)
    assert (w.balance_cents, w.held_cents, w.available_cents) == (100, 70, 30)
    assert (hold.status, other.status) == ("held", "held")


def test_settle_refuses_a_negative_amount_and_a_settled_hold() -> None:
    w = _wallet()
    hold = w.place_hold(uuid.uuid4(), uuid.uuid4(), 40)
    with pytest.raises(InvalidAmount):
        w.settle_hold(hold, -1)
    w.release_hold(hold)
    with pytest.raises(HoldNotActive):
        w.settle_hold(hold, 10)
    assert (w.balance_cents, w.held_cents) == (100, 0)


def test_emails_are_normalised_to_lower_case() -> None:
    assert normalize_email("  Ada.Lovelace@Example.COM ") == "ada.lovelace@example.com"
