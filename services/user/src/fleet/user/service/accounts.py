"""Use cases: registration, login, the bootstrapped operator."""

from __future__ import annotations

import uuid

from sqlalchemy.exc import IntegrityError

from fleet.common.app import not_found
from fleet.common.auth import Role
from fleet.common.db import Database, utcnow
from fleet.common.errors import ConflictError, UnauthorizedError
from fleet.common.logging import get_logger
from fleet.user.adapters.notifications import SqlNotificationRepository
from fleet.user.adapters.passwords import Argon2Passwords
from fleet.user.adapters.users import SqlUserRepository
from fleet.user.adapters.wallets import SqlWalletRepository
from fleet.user.domain.users import User, normalize_email
from fleet.user.domain.wallet import Wallet

log = get_logger("fleet.user")

WELCOME_TITLE = "Welcome to Fleet"
WELCOME_BODY = "Top up your wallet to book your first ride."


def _email_taken(email: str) -> ConflictError:
    return ConflictError(f"email {email} is already registered")


async def register(
    db: Database, passwords: Argon2Passwords, email: str, password: str, name: str
) -> User:
    """A new rider with an empty wallet and a welcome notification; 409 if the email is taken."""
    email = normalize_email(email)
    async with db.session() as session:
        if await SqlUserRepository(session).by_email(email):
            raise _email_taken(email)
    user = User(uuid.uuid4(), email, name, "rider", await passwords.hash(password), utcnow())
    try:
        async with db.transaction() as session:
            await SqlUserRepository(session).add(user)
            await SqlWalletRepository(session).add(Wallet(user.id))
            await SqlNotificationRepository(session).add(
                user.id, "welcome", WELCOME_TITLE, WELCOME_BODY
            )
    except IntegrityError as exc:  # a concurrent registration of the same email won the race
        raise _email_taken(email) from exc
    return user


async def authenticate(db: Database, passwords: Argon2Passwords, email: str, password: str) -> User:
    """The user whose credentials these are, else 401 (the same answer for unknown emails)."""
    async with db.session() as session:
        user = await SqlUserRepository(session).by_email(normalize_email(email))
    matches = await passwords.verify(user.password_hash if user else None, password)
    if user is None or not matches:
        raise UnauthorizedError("invalid email or password")
    if passwords.needs_rehash(user.password_hash):
        async with db.transaction() as session:
            await SqlUserRepository(session).set_password_hash(
                user.id, await passwords.hash(password)
            )
    return user


async def get_user(db: Database, user_id: uuid.UUID) -> User:
    async with db.session() as session:
        user = await SqlUserRepository(session).get(user_id)
    if user is None:
        raise not_found("user", user_id)
    return user


async def ensure_operator(
    db: Database, passwords: Argon2Passwords, email: str, password: str
) -> User:
    """Create the bootstrap operator unless it exists; safe when several processes start at once."""
    email = normalize_email(email)
    async with db.session() as session:
        existing = await SqlUserRepository(session).by_email(email)
    if existing is None:
        role: Role = "operator"
        user = User(uuid.uuid4(), email, "Operator", role, await passwords.hash(password), utcnow())
        try:
            async with db.transaction() as session:
                await SqlUserRepository(session).add(user)
            log.info("operator account created", email=email, user_id=str(user.id))
            return user
        except IntegrityError:  # another process created it between our read and our insert
            async with db.session() as session:
                existing = await SqlUserRepository(session).by_email(email)
            if existing is None:
                raise
    log.info("operator account exists", email=email, user_id=str(existing.id), role=existing.role)
    return existing
