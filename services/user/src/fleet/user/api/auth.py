"""Registration, login and the caller's own account."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.security import OAuth2PasswordRequestForm

from fleet.common.auth import CurrentPrincipal
from fleet.common.errors import InvalidInputError
from fleet.common.text import one_line
from fleet.user.api.deps import DbDep, IssuerDep, PasswordsDep
from fleet.user.api.schemas import RegisterIn, TokenOut, UserOut
from fleet.user.service import accounts as uc

router = APIRouter(tags=["user"])


@router.post(
    "/auth/register",
    status_code=201,
    summary="Register a rider account",
    responses={409: {"description": "The email is already registered"}},
)
async def register(body: RegisterIn, db: DbDep, passwords: PasswordsDep) -> UserOut:
    return UserOut.of(await uc.register(db, passwords, body.email, body.password, body.name))


@router.post(
    "/auth/token",
    summary="Log in (OAuth2 password flow, username = email)",
    responses={
        401: {"description": "Wrong email or password"},
        503: {"description": "This instance has no signing key and cannot issue tokens"},
    },
)
async def token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    db: DbDep,
    passwords: PasswordsDep,
    issuer: IssuerDep,
) -> TokenOut:
    try:
        one_line(form.username)  # PostgreSQL would choke on a NUL in the lookup
    except ValueError as exc:
        raise InvalidInputError(str(exc), field="username") from None
    user = await uc.authenticate(db, passwords, form.username, form.password)
    return TokenOut(
        access_token=issuer.issue(user.id, user.role, user.email),
        expires_in=issuer.ttl_seconds,
    )


@router.get(
    "/users/me",
    summary="The caller's account",
    responses={404: {"description": "The token's account does not exist (any more)"}},
)
async def me(db: DbDep, who: CurrentPrincipal) -> UserOut:
    return UserOut.of(await uc.get_user(db, who.user_id))
