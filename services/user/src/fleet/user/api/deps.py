"""Dependency aliases of the user API."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from fleet.common.app import runtime, upstream
from fleet.common.auth import TokenIssuer
from fleet.common.db import Database
from fleet.common.errors import ServiceUnavailableError
from fleet.user.adapters.passwords import Argon2Passwords
from fleet.user.adapters.trips import HttpTripDirectory
from fleet.user.service.trips import TripDirectory

SERVICE = "user"
PASSWORDS = "passwords"


async def get_db(request: Request) -> Database:
    return runtime(request, SERVICE).db


async def get_passwords(request: Request) -> Argon2Passwords:
    passwords: Argon2Passwords = runtime(request, SERVICE).extras[PASSWORDS]
    return passwords


async def get_issuer(request: Request) -> TokenIssuer:
    """The token signer; a process holding only the public key cannot log anyone in."""
    issuer = runtime(request, SERVICE).platform.issuer
    if issuer is None:
        raise ServiceUnavailableError("this instance has no signing key and cannot issue tokens")
    return issuer


async def get_trips(request: Request) -> TripDirectory:
    return HttpTripDirectory(upstream(request, "trip"))


DbDep = Annotated[Database, Depends(get_db)]
PasswordsDep = Annotated[Argon2Passwords, Depends(get_passwords)]
IssuerDep = Annotated[TokenIssuer, Depends(get_issuer)]
TripsDep = Annotated[TripDirectory, Depends(get_trips)]
