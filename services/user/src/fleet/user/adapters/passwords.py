"""Password hashing with Argon2id (argon2-cffi), off the event loop."""

from __future__ import annotations

import asyncio
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from fleet.common.config import Environment


class Argon2Passwords:
    """Hashes and verifies passwords; unknown accounts cost as much as known ones."""

    def __init__(self, hasher: PasswordHasher) -> None:
        self._hasher = hasher
        # Verified against when the email is unknown, so timing does not reveal which emails exist.
        self._dummy_hash = hasher.hash(secrets.token_urlsafe(16))

    @classmethod
    def for_env(cls, env: Environment) -> Argon2Passwords:
        if env == "test":
            # Cheap parameters keep the test suite fast; never used outside tests.
            return cls(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
        return cls(PasswordHasher())

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True if `password` matches; a None hash is checked against the dummy and fails."""
        target = password_hash if password_hash is not None else self._dummy_hash
        try:
            ok = await asyncio.to_thread(self._hasher.verify, target, password)
        except (VerificationError, InvalidHashError):
            return False
        return ok and password_hash is not None

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)
