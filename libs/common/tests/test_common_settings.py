from __future__ import annotations

import pytest
from pydantic import ValidationError

from fleet.common.config import Settings


def test_dev_settings_work_with_nothing_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    s = Settings(_env_file=None)
    assert s.env == "dev"
    assert s.database_url_for("vehicle").startswith("sqlite+aiosqlite:///")
    assert s.database_url_for("vehicle").endswith("vehicle.db")


def test_prod_refuses_the_dev_admin_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEET_ENV", "prod")
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://x@db/fleet")
    monkeypatch.setenv("FLEET_JWT_PUBLIC_KEY", "-----BEGIN PUBLIC KEY-----")
    with pytest.raises(ValidationError, match="FLEET_ADMIN_PASSWORD"):
        Settings()


def test_prod_refuses_missing_keys_and_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEET_ENV", "prod")
    monkeypatch.setenv("FLEET_ADMIN_PASSWORD", "a-long-and-real-secret")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pytest.raises(ValidationError) as err:
        Settings()
    assert "FLEET_JWT_PUBLIC_KEY" in str(err.value)
    assert "DATABASE_URL" in str(err.value)


def test_prod_accepts_explicit_secure_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEET_ENV", "prod")
    monkeypatch.setenv("FLEET_ADMIN_PASSWORD", "a-long-and-real-secret")
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://x@db/fleet")
    monkeypatch.setenv("FLEET_JWT_PUBLIC_KEY_FILE", "/run/secrets/jwt.pub")
    assert Settings().env == "prod"
