from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import jwt
import pytest

from fleet.common.auth import TokenIssuer, TokenVerifier, dev_keypair, generate_keypair
from fleet.common.errors import UnauthorizedError


def _pair() -> tuple[TokenIssuer, TokenVerifier]:
    keys = generate_keypair()
    assert keys.private_pem
    return (
        TokenIssuer(keys.private_pem, issuer="fleet", ttl_seconds=60),
        TokenVerifier(keys.public_pem, issuer="fleet"),
    )


def test_a_token_round_trips_to_the_same_principal() -> None:
    issuer, verifier = _pair()
    uid = uuid.uuid4()
    p = verifier.verify(issuer.issue(uid, "operator", "op@example.com"))
    assert (p.user_id, p.role, p.email) == (uid, "operator", "op@example.com")
    assert p.is_operator


def test_a_token_signed_by_another_key_is_refused() -> None:
    issuer, _ = _pair()
    _, other_verifier = _pair()
    with pytest.raises(UnauthorizedError, match="invalid token"):
        other_verifier.verify(issuer.issue(uuid.uuid4(), "rider", "r@example.com"))


def test_an_expired_token_is_refused() -> None:
    keys = generate_keypair()
    assert keys.private_pem
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(keys.private_pem.encode(), password=None)
    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    claims = {"sub": str(uuid.uuid4()), "role": "rider", "iss": "fleet", "exp": past}
    token = jwt.encode(claims, key, algorithm="EdDSA")  # type: ignore[arg-type]
    with pytest.raises(UnauthorizedError, match="expired"):
        TokenVerifier(keys.public_pem, issuer="fleet").verify(token)


def test_an_unsigned_token_is_refused() -> None:
    _, verifier = _pair()
    token = jwt.encode(
        {"sub": str(uuid.uuid4()), "role": "operator", "iss": "fleet", "exp": 9999999999},
        key="",
        algorithm="none",
    )
    with pytest.raises(UnauthorizedError):
        verifier.verify(token)


def test_dev_keypair_is_kept_across_restarts(tmp_path: Path) -> None:
    first = dev_keypair(tmp_path)
    second = dev_keypair(tmp_path)
    assert first == second
    assert (tmp_path / "jwt-ed25519.pem").stat().st_mode & 0o077 == 0
