"""Credit holds at the service layer, on SQLite and PostgreSQL (the saga will drive these)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from fleet.common.db import Database, utcnow
from fleet.common.errors import ConflictError, NotFoundError
from fleet.common.testing import MakeDb, recorded_statements
from fleet.user.adapters.users import SqlUserRepository
from fleet.user.adapters.wallets import SqlWalletRepository
from fleet.user.app import module
from fleet.user.domain.errors import CaptureExceedsHold, HoldNotActive, InsufficientCredits
from fleet.user.domain.users import User
from fleet.user.domain.wallet import Wallet
from fleet.user.service import wallets as uc


async def _rider(db: Database, balance: int = 100) -> uuid.UUID:
    user = User(uuid.uuid4(), f"{uuid.uuid4().hex}@example.com", "R", "rider", "x", utcnow())
    async with db.transaction() as s:
        await SqlUserRepository(s).add(user)
        await SqlWalletRepository(s).add(Wallet(user.id))
    if balance:
        await uc.top_up(db, user.id, balance)
    return user.id


async def _state(db: Database, user_id: uuid.UUID) -> tuple[int, int, int]:
    w = await uc.get_wallet(db, user_id)
    return w.balance_cents, w.held_cents, w.available_cents


@pytest.fixture
async def db(make_db: MakeDb) -> Database:
    return await make_db(module())


async def test_reserve_holds_credits_and_reduces_available(db: Database) -> None:
    rider = await _rider(db)
    hold = await uc.reserve_credits(db, rider, uuid.uuid4(), 30)
    assert hold.status == "held"
    assert await _state(db, rider) == (100, 30, 70)


async def test_hold_beyond_available_is_refused_and_changes_nothing(db: Database) -> None:
    rider = await _rider(db)
    await uc.reserve_credits(db, rider, uuid.uuid4(), 60)
    ref = uuid.uuid4()
    with pytest.raises(InsufficientCredits):
        await uc.reserve_credits(db, rider, ref, 41)
    assert await _state(db, rider) == (100, 60, 40)
    async with db.session() as s:
        assert await SqlWalletRepository(s).hold(ref) is None
        assert len(await SqlWalletRepository(s).holds_of(rider)) == 1


async def test_same_reference_twice_holds_once(db: Database) -> None:
    rider = await _rider(db)
    ref = uuid.uuid4()
    first = await uc.reserve_credits(db, rider, ref, 30)
    again = await uc.reserve_credits(db, rider, ref, 30)
    assert again.id == first.id
    assert await _state(db, rider) == (100, 30, 70)


async def test_a_repeat_of_a_hold_the_wallet_could_no_longer_cover_answers_that_hold(
    db: Database,
) -> None:
    rider = await _rider(db)
    ref = uuid.uuid4()
    first = await uc.reserve_credits(db, rider, ref, 80)
    again = await uc.reserve_credits(db, rider, ref, 80)  # only 20 are available now
    assert again.id == first.id
    assert await _state(db, rider) == (100, 80, 20)


async def test_a_new_hold_is_two_statements_on_postgres(db: Database) -> None:
    rider = await _rider(db)
    with recorded_statements(db) as seen:
        async with db.transaction() as s:
            await uc.hold_credits(s, rider, uuid.uuid4(), 30)
    if db.is_sqlite:
        assert [q.split()[0] for q in seen] == ["SELECT", "INSERT", "UPDATE"]
    else:  # the wallet lock, then the hold's insert and the wallet's update as one statement
        assert [q.split()[0] for q in seen] == ["SELECT", "WITH"]
    assert await _state(db, rider) == (100, 30, 70)


async def test_a_taken_reference_leaves_the_wallet_as_it_was(db: Database) -> None:
    rider, other = await _rider(db), await _rider(db)
    ref = uuid.uuid4()
    await uc.reserve_credits(db, other, ref, 30)
    with pytest.raises(ConflictError):  # the reference holds credits of another rider
        await uc.reserve_credits(db, rider, ref, 30)
    assert await _state(db, rider) == (100, 0, 100)
    assert await _state(db, other) == (100, 30, 70)


async def test_same_reference_for_another_amount_or_rider_is_a_conflict(db: Database) -> None:
    rider, other = await _rider(db), await _rider(db)
    ref = uuid.uuid4()
    await uc.reserve_credits(db, rider, ref, 30)
    with pytest.raises(ConflictError):
        await uc.reserve_credits(db, rider, ref, 31)
    with pytest.raises(ConflictError):
        await uc.reserve_credits(db, other, ref, 30)
    assert await _state(db, other) == (100, 0, 100)


async def test_reserve_for_a_rider_without_wallet_is_not_found(db: Database) -> None:
    with pytest.raises(NotFoundError):
        await uc.reserve_credits(db, uuid.uuid4(), uuid.uuid4(), 10)


async def test_release_frees_the_amount_and_is_idempotent(db: Database) -> None:
    rider = await _rider(db)
    ref = uuid.uuid4()
    await uc.reserve_credits(db, rider, ref, 30)
    released = await uc.release_credits(db, ref)
    assert released is not None
    assert released.status == "released"
    assert await _state(db, rider) == (100, 0, 100)
    again = await uc.release_credits(db, ref)
    assert again is not None
    assert again.status == "released"
    assert await _state(db, rider) == (100, 0, 100)


async def test_release_of_an_unknown_reference_changes_nothing(db: Database) -> None:
    rider = await _rider(db)
    assert await uc.release_credits(db, uuid.uuid4()) is None
    assert await _state(db, rider) == (100, 0, 100)


async def test_a_late_duplicate_reserve_after_release_does_not_hold_again(db: Database) -> None:
    rider = await _rider(db)
    ref = uuid.uuid4()
    await uc.reserve_credits(db, rider, ref, 30)
    await uc.release_credits(db, ref)
    hold = await uc.reserve_credits(db, rider, ref, 30)
    assert hold.status == "released"
    assert await _state(db, rider) == (100, 0, 100)


async def test_capture_of_part_debits_it_and_releases_the_rest(db: Database) -> None:
    rider = await _rider(db)
    ref = uuid.uuid4()
    await uc.reserve_credits(db, rider, ref, 40)
    hold = await uc.capture_credits(db, ref, 25)
    assert (hold.status, hold.captured_cents) == ("captured", 25)
    assert await _state(db, rider) == (75, 0, 75)
    async with db.session() as s:
        entries = await SqlWalletRepository(s).entries(rider)
    assert [(e.kind, e.amount_cents, e.reference) for e in entries] == [
        ("top_up", 100, None),
        ("capture", -25, str(ref)),
    ]


async def test_capture_repeated_debits_once(db: Database) -> None:
    rider = await _rider(db)
    ref = uuid.uuid4()
    await uc.reserve_credits(db, rider, ref, 40)
    await uc.capture_credits(db, ref, 25)
    await uc.capture_credits(db, ref, 25)
    assert await _state(db, rider) == (75, 0, 75)


async def test_capture_beyond_the_hold_is_refused_and_changes_nothing(db: Database) -> None:
    rider = await _rider(db)
    ref = uuid.uuid4()
    await uc.reserve_credits(db, rider, ref, 40)
    with pytest.raises(CaptureExceedsHold):
        await uc.capture_credits(db, ref, 41)
    assert await _state(db, rider) == (100, 40, 60)


async def test_released_hold_cannot_be_captured_nor_captured_one_released(db: Database) -> None:
    rider = await _rider(db)
    released, captured = uuid.uuid4(), uuid.uuid4()
    await uc.reserve_credits(db, rider, released, 10)
    await uc.reserve_credits(db, rider, captured, 10)
    await uc.release_credits(db, released)
    await uc.capture_credits(db, captured, 10)
    with pytest.raises(HoldNotActive):
        await uc.capture_credits(db, released, 10)
    with pytest.raises(HoldNotActive):
        await uc.release_credits(db, captured)
    assert await _state(db, rider) == (90, 0, 90)


async def test_capture_of_an_unknown_reference_is_not_found(db: Database) -> None:
    with pytest.raises(NotFoundError):
        await uc.capture_credits(db, uuid.uuid4(), 10)


async def test_top_up_with_the_same_key_credits_once(db: Database) -> None:
    rider = await _rider(db)
    first = await uc.top_up(db, rider, 50, "key-1")
    again = await uc.top_up(db, rider, 50, "key-1")
    assert (again.balance_cents, again.held_cents) == (first.balance_cents, first.held_cents)
    assert await _state(db, rider) == (150, 0, 150)
    with pytest.raises(ConflictError):
        await uc.top_up(db, rider, 60, "key-1")


# Row locks and real concurrency exist only on PostgreSQL (embedded SQLite serialises writers).
postgres_only = pytest.mark.parametrize("backend_url", ["postgres"], indirect=True)


@postgres_only
async def test_concurrent_holds_never_overdraw(db: Database) -> None:
    rider = await _rider(db)

    async def attempt() -> bool:
        try:
            await uc.reserve_credits(db, rider, uuid.uuid4(), 30)
        except InsufficientCredits:
            return False
        return True

    results = await asyncio.gather(*(attempt() for _ in range(10)))
    assert results.count(True) == 3
    assert await _state(db, rider) == (100, 90, 10)
    async with db.session() as s:
        assert len(await SqlWalletRepository(s).holds_of(rider)) == 3


@postgres_only
async def test_concurrent_duplicates_of_one_reference_hold_once(db: Database) -> None:
    rider = await _rider(db)
    ref = uuid.uuid4()
    holds = await asyncio.gather(*(uc.reserve_credits(db, rider, ref, 30) for _ in range(5)))
    assert len({h.id for h in holds}) == 1
    assert await _state(db, rider) == (100, 30, 70)
