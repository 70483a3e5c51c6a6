"""Request and response bodies of the user API."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Annotated, Literal

import email_validator
from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, StringConstraints

from fleet.common.auth import Role
from fleet.common.numbers import WholeNumber
from fleet.common.text import ONE_LINE_SCHEMA, MultiLine, one_line
from fleet.user.domain.users import User
from fleet.user.domain.wallet import Wallet

MAX_TOP_UP_CENTS = 1_000_000


def _not_special_use() -> str:
    """A JSON-schema pattern for what the address validator refuses beyond the `email` format:
    a domain that is, or ends in, a special-use name (`.local`, `.test`, `.localhost`, `.arpa`…:
    mail there reaches no one, or someone it should not). Built from email-validator's own list,
    letter case ignored, so that the documented schema and the check agree."""
    names = "|".join(
        "".join(f"[{c}{c.upper()}]" if c.isalpha() else re.escape(c) for c in name)
        for name in email_validator.SPECIAL_USE_DOMAIN_NAMES
    )
    return rf"^(?!.*@(?:[^@]*\.)?(?:{names})$)"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterIn(Strict):
    email: EmailStr = Field(
        max_length=320,
        description="An address mail could reach: special-use domains (`.local`, `.test`, "
        "`.localhost`, `.invalid`, `.onion`, `.arpa`…) are refused.",
        # Documented only: the address validator enforces it, with its own clear message.
        json_schema_extra={"pattern": _not_special_use()},
    )
    password: str = Field(min_length=8, max_length=128)
    name: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
        AfterValidator(one_line),
        ONE_LINE_SCHEMA,
    ]


class UserOut(BaseModel):
    id: uuid.UUID
    email: str
    name: str
    role: Role

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(id=user.id, email=user.email, name=user.name, role=user.role)


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type
    expires_in: int


class WalletOut(BaseModel):
    balance_cents: int
    held_cents: int
    available_cents: int

    @classmethod
    def of(cls, wallet: Wallet) -> WalletOut:
        return cls(
            balance_cents=wallet.balance_cents,
            held_cents=wallet.held_cents,
            available_cents=wallet.available_cents,
        )


class TopUpIn(Strict):
    # strict: money is never parsed from strings, floats or booleans
    amount_cents: WholeNumber = Field(ge=1, le=MAX_TOP_UP_CENTS)


class NotificationOut(BaseModel):
    id: uuid.UUID
    kind: str
    title: str
    body: str
    created_at: dt.datetime
    read_at: dt.datetime | None = None


class FeedbackIn(Strict):
    trip_id: uuid.UUID
    rating: WholeNumber = Field(ge=1, le=5)
    comment: MultiLine | None = Field(None, max_length=1000)


class FeedbackOut(BaseModel):
    id: uuid.UUID
    trip_id: uuid.UUID
    rating: int
    comment: str | None
    created_at: dt.datetime
