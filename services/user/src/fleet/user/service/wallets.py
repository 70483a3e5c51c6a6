"""Use cases: the rider's wallet, top-ups, and credit holds driven by the booking saga.

Holds are idempotent by reference: the saga may redeliver `reserve-credits`, `release-credits` or
a capture, and each takes effect once. Every writer locks the wallet row first, then looks at the
hold, so a concurrent duplicate sees the first one's outcome. The functions taking a session
(`hold_credits`, `release_hold`, `settle_invoice`) run in the caller's transaction, so that a
message consumer commits its inbox row and its outgoing messages with the effect.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.common.app import not_found
from fleet.common.db import Database
from fleet.common.errors import ConflictError, FleetError
from fleet.user.adapters.wallets import LedgerEntry, SqlWalletRepository
from fleet.user.domain.errors import InsufficientCredits, InvalidAmount
from fleet.user.domain.wallet import Hold, Wallet


async def get_wallet(db: Database, user_id: uuid.UUID) -> Wallet:
    async with db.session() as session:
        wallet = await SqlWalletRepository(session).get(user_id)
    if wallet is None:
        raise not_found("wallet", user_id)
    return wallet


async def _locked(repo: SqlWalletRepository, user_id: uuid.UUID) -> Wallet:
    wallet = await repo.get(user_id, for_update=True)
    if wallet is None:
        raise not_found("wallet", user_id)
    return wallet


def _replay(entry: LedgerEntry, user_id: uuid.UUID, amount_cents: int) -> Wallet:
    if entry.amount_cents != amount_cents:
        raise ConflictError("Idempotency-Key was already used for a different top-up")
    return Wallet(user_id, entry.balance_after_cents, entry.held_after_cents)


async def top_up(
    db: Database, user_id: uuid.UUID, amount_cents: int, idempotency_key: str | None = None
) -> Wallet:
    """Credit the wallet and record it in the ledger; a repeated key replays the first result."""
    try:
        async with db.transaction() as session:
            repo = SqlWalletRepository(session)
            wallet = await _locked(repo, user_id)
            if idempotency_key and (prior := await repo.entry(user_id, "top_up", idempotency_key)):
                return _replay(prior, user_id, amount_cents)
            version = wallet.version
            wallet.top_up(amount_cents)
            await repo.save(wallet, version)
            await repo.record(wallet, "top_up", amount_cents, idempotency_key)
            return wallet
    except IntegrityError:
        if not idempotency_key:
            raise
    # Only reachable without row locks (SQLite): a concurrent request with this key committed.
    async with db.session() as session:
        prior = await SqlWalletRepository(session).entry(user_id, "top_up", idempotency_key)
    if prior is None:
        raise ConflictError("the wallet changed concurrently; retry")
    return _replay(prior, user_id, amount_cents)


def _same_request(hold: Hold, user_id: uuid.UUID, amount_cents: int) -> Hold:
    if hold.user_id != user_id or (hold.is_active and hold.amount_cents != amount_cents):
        raise ConflictError(f"reference {hold.reference} already holds credits for another request")
    return hold


async def hold_credits(
    session: AsyncSession, user_id: uuid.UUID, reference: uuid.UUID, amount_cents: int
) -> Hold:
    """Hold `amount_cents` for `reference` in the caller's transaction (see `reserve_credits`).

    Two statements on PostgreSQL when the reference is new (lock the wallet; insert the hold
    unless its reference is taken and, if it was inserted, save the wallet), three on SQLite:
    the look for an earlier hold of the reference is made only when the insert finds one, or
    when the wallet cannot cover the amount (a repeat of a hold placed when it could must still
    answer that hold).
    """
    repo = SqlWalletRepository(session)
    wallet = await _locked(repo, user_id)
    version = wallet.version
    try:
        hold = wallet.place_hold(uuid.uuid4(), reference, amount_cents)
    except FleetError:
        if existing := await repo.hold(reference):
            return _same_request(existing, user_id, amount_cents)
        raise
    if not await repo.add_hold_and_save(hold, wallet, version):  # held (or released) before,
        existing = await repo.hold(reference)  # maybe by another rider
        if existing is None:  # gone between the two statements: nothing deletes holds
            raise RuntimeError(f"the hold of reference {reference} vanished; retry")
        return _same_request(existing, user_id, amount_cents)
    return hold


async def reserve_credits(
    db: Database, user_id: uuid.UUID, reference: uuid.UUID, amount_cents: int
) -> Hold:
    """Hold `amount_cents` for `reference`; InsufficientCredits if the wallet cannot cover it.

    A reference already seen returns its hold unchanged, even if it was released meanwhile: a late
    duplicate of the command must not hold credits again after the saga compensated.
    """
    try:
        async with db.transaction() as session:
            return await hold_credits(session, user_id, reference, amount_cents)
    except IntegrityError:
        # Defensive: the insert skips a taken reference, so only a backend without row locks
        # racing a first hold of the reference could get here.
        async with db.session() as session:
            existing = await SqlWalletRepository(session).hold(reference)
        if existing is None:
            raise
        return _same_request(existing, user_id, amount_cents)


async def release_hold(
    session: AsyncSession,
    reference: uuid.UUID,
    *,
    settled_ok: bool = False,
    user_id: uuid.UUID | None = None,
) -> Hold | None:
    """Give a hold's credits back in the caller's transaction (see `release_credits`).

    With `settled_ok`, a captured hold is left as it is instead of raising HoldNotActive: a
    compensation or a cancellation arriving after the capture has nothing left to free.
    With `user_id` (the saga's compensation), a reference never held is remembered as released:
    the compensation may overtake its own action (both queued while the orchestrator was down,
    handled concurrently), and the late `reserve-credits` must then hold nothing.
    """
    repo = SqlWalletRepository(session)
    found = await repo.hold(reference)
    if found is None:
        return await _remember_release(repo, reference, user_id) if user_id else None
    wallet = await _locked(repo, found.user_id)
    # Re-read under the wallet lock: a concurrent duplicate may have settled it meanwhile.
    hold = await repo.hold(reference) or found
    if hold.status == "released" or (settled_ok and hold.status == "captured"):
        return hold
    version = wallet.version
    wallet.release_hold(hold)  # HoldNotActive if it was captured
    await repo.save(wallet, version)
    await repo.save_hold(hold)
    return hold


async def _remember_release(
    repo: SqlWalletRepository, reference: uuid.UUID, user_id: uuid.UUID
) -> Hold | None:
    # The wallet lock orders this with a concurrent `hold_credits` of the same reference.
    if await repo.get(user_id, for_update=True) is None:
        return None
    if await repo.hold(reference) is not None:  # its action landed meanwhile: release that
        return await release_hold(repo.session, reference, settled_ok=True)
    tombstone = Hold(uuid.uuid4(), user_id, reference, 0, status="released")
    await repo.add_hold(tombstone)
    return tombstone


async def release_credits(db: Database, reference: uuid.UUID) -> Hold | None:
    """Give a hold's credits back. Released holds stay released; unknown references are a no-op."""
    async with db.transaction() as session:
        return await release_hold(session, reference)


async def capture_credits(db: Database, reference: uuid.UUID, amount_cents: int) -> Hold:
    """Debit `amount_cents` of the hold and release the rest; a repeat returns the first result."""
    async with db.transaction() as session:
        repo = SqlWalletRepository(session)
        found = await repo.hold(reference)
        if found is None:
            raise not_found("credit hold", reference)
        wallet = await _locked(repo, found.user_id)
        hold = await repo.hold(reference) or found
        if hold.status == "captured" and hold.captured_cents == amount_cents:
            return hold
        version = wallet.version
        wallet.capture_hold(hold, amount_cents)
        await repo.save(wallet, version)
        await repo.save_hold(hold)
        await repo.record(wallet, "capture", -amount_cents, str(reference))
        return hold


@dataclass(frozen=True, slots=True)
class Settlement:
    """The outcome of charging an invoice to the credits held for its trip."""

    captured_cents: int
    refusal: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.refusal is None


async def settle_invoice(
    session: AsyncSession, rider_id: uuid.UUID, trip_id: uuid.UUID, amount_cents: int
) -> Settlement:
    """Charge `amount_cents` to the trip's hold (and the available credits beyond it).

    If the credits cannot cover it, nothing is debited and the hold is released: the invoice is
    refused, and keeping the credits blocked would not help the rider pay it. A hold that was
    already captured answers what it captured, so a re-issued invoice debits once.
    """
    repo = SqlWalletRepository(session)
    found = await repo.hold(trip_id)
    if found is None or found.user_id != rider_id:
        return Settlement(0, f"no credits are held for trip {trip_id} of rider {rider_id}")
    wallet = await _locked(repo, rider_id)
    hold = await repo.hold(trip_id) or found
    if hold.status == "captured":
        return await _settled_before(repo, hold, amount_cents)
    if hold.status == "released":
        return Settlement(0, f"the credits held for trip {trip_id} were already released")
    version = wallet.version
    try:
        wallet.settle_hold(hold, amount_cents)
    except InsufficientCredits as refusal:
        wallet.release_hold(hold)
        await repo.save(wallet, version)
        await repo.save_hold(hold)
        return Settlement(0, refusal.detail)
    except InvalidAmount as refusal:
        return Settlement(0, refusal.detail)
    await repo.save(wallet, version)
    await repo.save_hold(hold)
    # One ledger entry for the whole charge, the part beyond the hold included.
    await repo.record(wallet, "capture", -amount_cents, str(trip_id))
    return Settlement(amount_cents)


async def _settled_before(repo: SqlWalletRepository, hold: Hold, amount_cents: int) -> Settlement:
    entry = await repo.entry(hold.user_id, "capture", str(hold.reference))
    captured = -entry.amount_cents if entry else hold.captured_cents
    if captured != amount_cents:
        return Settlement(0, f"trip {hold.reference} was already settled for {captured}")
    return Settlement(captured)
