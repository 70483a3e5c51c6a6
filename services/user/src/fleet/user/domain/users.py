"""Accounts: identity, role and credentials."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from fleet.common.auth import Role


def normalize_email(email: str) -> str:
    """Emails are compared case-insensitively, so they are stored lower-cased."""
    return email.strip().lower()


@dataclass(frozen=True, slots=True)
class User:
    id: uuid.UUID
    email: str
    name: str
    role: Role
    password_hash: str
    created_at: dt.datetime
