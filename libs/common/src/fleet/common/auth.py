"""JWT authentication: the user service signs (EdDSA / Ed25519), every service verifies locally.

Tokens carry `sub` (user id), `role` (`rider` | `operator`) and `email`. Services depend on
`CurrentPrincipal` / `OperatorPrincipal` and never call the user service to authenticate.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from fleet.common.config import Settings
from fleet.common.errors import ForbiddenError, UnauthorizedError

ALGORITHM = "EdDSA"
Role = Literal["rider", "operator"]
ROLES: tuple[Role, ...] = ("rider", "operator")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the verified claims of the bearer token."""

    user_id: uuid.UUID
    role: Role
    email: str

    @property
    def is_operator(self) -> bool:
        return self.role == "operator"

    def may_access(self, owner_id: uuid.UUID) -> bool:
        """Operators see everything; a rider sees only what they own."""
        return self.is_operator or owner_id == self.user_id


@dataclass(frozen=True, slots=True)
class KeyPair:
    private_pem: str | None
    public_pem: str


def generate_keypair() -> KeyPair:
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return KeyPair(private_pem, public_pem)


def _public_from_private(private_pem: str) -> str:
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def load_keys(settings: Settings) -> KeyPair:
    """Keys from settings (inline PEM or files); in dev, a key pair kept in the data dir."""
    private = settings.jwt_private_key.get_secret_value() if settings.jwt_private_key else None
    if private is None and settings.jwt_private_key_file:
        private = settings.jwt_private_key_file.read_text()
    public = settings.jwt_public_key
    if public is None and settings.jwt_public_key_file:
        public = settings.jwt_public_key_file.read_text()
    if private and not public:
        public = _public_from_private(private)
    if public:
        return KeyPair(private, public)
    if not settings.is_dev:
        raise RuntimeError("no JWT keys configured")
    return dev_keypair(settings.data_dir)


def dev_keypair(data_dir: Path) -> KeyPair:
    """A development key pair persisted under `data_dir` so tokens survive restarts."""
    path = data_dir / "jwt-ed25519.pem"
    if path.exists():
        private = path.read_text()
        return KeyPair(private, _public_from_private(private))
    pair = generate_keypair()
    data_dir.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(pair.private_pem or "")
    return pair


class TokenIssuer:
    """Signs access tokens (user service only)."""

    def __init__(self, private_pem: str, *, issuer: str, ttl_seconds: int) -> None:
        self._key = serialization.load_pem_private_key(private_pem.encode(), password=None)
        self.issuer = issuer
        self.ttl_seconds = ttl_seconds

    def issue(self, user_id: uuid.UUID, role: Role, email: str) -> str:
        now = dt.datetime.now(dt.UTC)
        claims = {
            "sub": str(user_id),
            "role": role,
            "email": email,
            "iss": self.issuer,
            "iat": now,
            "exp": now + dt.timedelta(seconds=self.ttl_seconds),
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)  # type: ignore[arg-type]


class TokenVerifier:
    """Verifies access tokens with the public key (every service).

    A verified token is remembered (bounded LRU, until its `exp`): clients send the same token
    for its whole life, and an Ed25519 verification costs more (~140 µs) than a cached read of
    a whole resource. Remembering changes nothing about what is accepted: the key is the exact
    token string, and the expiry is checked on every use.
    """

    def __init__(self, public_pem: str, *, issuer: str, cache_size: int = 4096) -> None:
        self._key = serialization.load_pem_public_key(public_pem.encode())
        self.issuer = issuer
        self.cache_size = cache_size
        self._verified: OrderedDict[str, tuple[float, Principal]] = OrderedDict()

    def verify(self, token: str) -> Principal:
        known = self._verified.get(token)
        if known is not None:
            if known[0] > time.time():
                self._verified.move_to_end(token)
                return known[1]
            del self._verified[token]
        expires, principal = self._decode(token)
        if self.cache_size:
            self._verified[token] = (expires, principal)
            if len(self._verified) > self.cache_size:
                self._verified.popitem(last=False)
        return principal

    def _decode(self, token: str) -> tuple[float, Principal]:
        try:
            claims = jwt.decode(
                token,
                self._key,  # type: ignore[arg-type]
                algorithms=[ALGORITHM],
                issuer=self.issuer,
                options={"require": ["sub", "exp", "iss", "role"]},
            )
            role = claims["role"]
            if role not in ROLES:
                raise UnauthorizedError("token carries an unknown role")
            principal = Principal(uuid.UUID(claims["sub"]), role, str(claims.get("email", "")))
            return float(claims["exp"]), principal
        except jwt.ExpiredSignatureError as exc:
            raise UnauthorizedError("token expired") from exc
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise UnauthorizedError("invalid token") from exc


_bearer = OAuth2PasswordBearer(tokenUrl="/auth/token", auto_error=False)


def principal_from(request: Request, token: str | None) -> Principal:
    """The verified caller of `request` (its bearer `token`), or 401."""
    if not token:
        raise UnauthorizedError("missing bearer token")
    verifier: TokenVerifier = request.app.state.fleet.verifier
    principal = verifier.verify(token)
    request.state.principal = principal
    return principal


def require_operator(principal: Principal) -> Principal:
    """`principal` if it is an operator, else 403."""
    if not principal.is_operator:
        raise ForbiddenError("operator role required")
    return principal


def require_rider(principal: Principal) -> Principal:
    """`principal` if it is a rider, else 403."""
    if principal.role != "rider":
        raise ForbiddenError("rider role required")
    return principal


def require_role(principal: Principal, role: Role | None) -> Principal:
    """`principal` if it has `role` (any role when None), else 403."""
    if role == "operator":
        return require_operator(principal)
    if role == "rider":
        return require_rider(principal)
    return principal


class BearerPrincipal(OAuth2PasswordBearer):
    """The bearer-token scheme (as documented in OpenAPI) that also verifies the token and,
    optionally, the role: one dependency per request instead of a chain of three, since FastAPI
    spends ~15 µs solving each. `async`, as a plain `def` would run in a worker thread."""

    def __init__(self, role: Role | None = None) -> None:
        super().__init__(
            tokenUrl="/auth/token", scheme_name="OAuth2PasswordBearer", auto_error=False
        )
        self.role = role

    async def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        return require_role(principal_from(request, await super().__call__(request)), self.role)


current_principal = BearerPrincipal()
current_operator = BearerPrincipal("operator")
current_rider = BearerPrincipal("rider")


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
OperatorPrincipal = Annotated[Principal, Depends(current_operator)]
RiderPrincipal = Annotated[Principal, Depends(current_rider)]
