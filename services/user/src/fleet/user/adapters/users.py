"""SQL repository of user accounts."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.user.adapters.tables import users
from fleet.user.domain.users import User

# Each saga command checks its rider with it: built once, executed with a parameter.
_GET = select(users).where(users.c.id == bindparam("p_id"))
_BY_EMAIL = select(users).where(users.c.email == bindparam("p_email"))


def _user(row: Any) -> User:
    return User(row.id, row.email, row.name, row.role, row.password_hash, row.created_at)


class SqlUserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, user_id: uuid.UUID) -> User | None:
        row = (await self.session.execute(_GET, {"p_id": user_id})).first()
        return _user(row) if row else None

    async def by_email(self, email: str) -> User | None:
        """`email` must already be normalised (lower-cased)."""
        row = (await self.session.execute(_BY_EMAIL, {"p_email": email})).first()
        return _user(row) if row else None

    async def add(self, user: User) -> None:
        await self.session.execute(
            users.insert().values(
                id=user.id,
                email=user.email,
                name=user.name,
                role=user.role,
                password_hash=user.password_hash,
                created_at=user.created_at,
            )
        )

    async def set_password_hash(self, user_id: uuid.UUID, password_hash: str) -> None:
        await self.session.execute(
            update(users).where(users.c.id == user_id).values(password_hash=password_hash)
        )
