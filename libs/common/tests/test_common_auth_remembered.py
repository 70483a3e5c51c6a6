"""TokenVerifier remembers verified tokens: cheaper, never more permissive."""

from __future__ import annotations

import datetime as dt
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from fleet.common.auth import TokenIssuer, TokenVerifier, generate_keypair
from fleet.common.errors import UnauthorizedError


def _pair(cache_size: int = 4096, ttl: int = 60) -> tuple[TokenIssuer, TokenVerifier]:
    keys = generate_keypair()
    assert keys.private_pem
    return (
        TokenIssuer(keys.private_pem, issuer="fleet", ttl_seconds=ttl),
        TokenVerifier(keys.public_pem, issuer="fleet", cache_size=cache_size),
    )


def test_a_remembered_token_gives_the_same_principal_without_reverifying(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    issuer, verifier = _pair()
    token = issuer.issue(uuid.uuid4(), "rider", "r@example.com")
    first = verifier.verify(token)
    monkeypatch.setattr(verifier, "_decode", lambda _t: pytest.fail("verified twice"))
    assert verifier.verify(token) == first


def test_a_remembered_token_still_expires() -> None:
    keys = generate_keypair()
    assert keys.private_pem
    key = serialization.load_pem_private_key(keys.private_pem.encode(), password=None)
    verifier = TokenVerifier(keys.public_pem, issuer="fleet")
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    claims = {"sub": str(uuid.uuid4()), "role": "rider", "iss": "fleet", "exp": soon}
    token = jwt.encode(claims, key, algorithm="EdDSA")  # type: ignore[arg-type]
    verifier.verify(token)
    time.sleep(max(0.0, soon.timestamp() - time.time()) + 0.05)
    with pytest.raises(UnauthorizedError, match="expired"):
        verifier.verify(token)


def test_a_refused_token_is_refused_every_time_and_the_memory_is_bounded() -> None:
    issuer, verifier = _pair(cache_size=2)
    bad = issuer.issue(uuid.uuid4(), "rider", "r@example.com")[:-4] + "AAAA"
    for _ in range(2):
        with pytest.raises(UnauthorizedError, match="invalid token"):
            verifier.verify(bad)
    tokens = [issuer.issue(uuid.uuid4(), "rider", f"r{i}@example.com") for i in range(5)]
    for token in tokens:
        verifier.verify(token)
    assert len(verifier._verified) == 2
    assert bad not in verifier._verified
