"""Device tokens: the secret a vehicle uses to post its own telemetry.

Only the SHA-256 of a token is stored; the token is shown once, when the vehicle is registered.
A 256-bit random secret needs no slow hash: nothing can be guessed from its digest.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

TOKEN_BYTES = 32


def new_device_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_device_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def device_token_matches(token: str, stored_hash: str) -> bool:
    """Constant-time comparison, so response timing tells nothing about the stored hash."""
    return hmac.compare_digest(hash_device_token(token), stored_hash)
