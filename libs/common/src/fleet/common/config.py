"""Settings shared by every service, read from the environment (12-factor).

Dev defaults make `make run` work with nothing configured; outside `dev`/`test` the settings refuse
to start with a default admin password or without explicit signing keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# `.example` (RFC 2606): an address for documentation that registration accepts too — the
# special-use `.local` it replaced was one `POST /auth/register` refuses (422).
DEV_ADMIN_EMAIL = "admin@fleet.example"
DEV_ADMIN_PASSWORD = "admin-password"  # noqa: S105 - a documented dev default, refused in prod

Environment = Literal["dev", "test", "prod"]


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class Settings(BaseSettings):
    """Configuration of one process (one service, or the embedded platform)."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", populate_by_name=True)

    env: Environment = Field("dev", validation_alias=_env("FLEET_ENV"))
    data_dir: Path = Field(Path("data"), validation_alias=_env("FLEET_DATA_DIR"))
    database_url: str | None = Field(None, validation_alias=_env("DATABASE_URL"))
    amqp_url: str | None = Field(None, validation_alias=_env("AMQP_URL"))
    redis_url: str | None = Field(None, validation_alias=_env("REDIS_URL"))
    # Separates deployments (or test stacks) that share one Redis: every key starts with it.
    redis_prefix: str = Field("fleet", min_length=1, validation_alias=_env("FLEET_REDIS_PREFIX"))

    # The other services, for the few synchronous reads (fleet.common.http). Unset: a service in
    # the same app is called in-process (embedded mode).
    user_url: str | None = Field(None, validation_alias=_env("FLEET_USER_URL"))
    vehicle_url: str | None = Field(None, validation_alias=_env("FLEET_VEHICLE_URL"))
    trip_url: str | None = Field(None, validation_alias=_env("FLEET_TRIP_URL"))
    billing_url: str | None = Field(None, validation_alias=_env("FLEET_BILLING_URL"))

    admin_email: str = Field(DEV_ADMIN_EMAIL, validation_alias=_env("FLEET_ADMIN_EMAIL"))
    admin_password: SecretStr = Field(
        SecretStr(DEV_ADMIN_PASSWORD), validation_alias=_env("FLEET_ADMIN_PASSWORD")
    )

    jwt_private_key: SecretStr | None = Field(None, validation_alias=_env("FLEET_JWT_PRIVATE_KEY"))
    jwt_public_key: str | None = Field(None, validation_alias=_env("FLEET_JWT_PUBLIC_KEY"))
    jwt_private_key_file: Path | None = Field(
        None, validation_alias=_env("FLEET_JWT_PRIVATE_KEY_FILE")
    )
    jwt_public_key_file: Path | None = Field(
        None, validation_alias=_env("FLEET_JWT_PUBLIC_KEY_FILE")
    )
    jwt_issuer: str = Field("fleet", validation_alias=_env("FLEET_JWT_ISSUER"))
    jwt_ttl_seconds: int = Field(3600, ge=60, le=86400, validation_alias=_env("FLEET_JWT_TTL"))

    # Handled message ids are kept this long (hours): far beyond any redelivery or re-publish, so
    # a duplicate still finds its twin; older ones are purged every 10 minutes.
    inbox_retention_hours: float = Field(
        168.0, ge=1.0, validation_alias=_env("FLEET_INBOX_RETENTION_HOURS")
    )
    # Inbox consumers handle the messages that queue up while a transaction runs together, up to
    # this many per transaction (group commit; 1 = one message per transaction).
    consumer_batch: int = Field(32, ge=1, le=256, validation_alias=_env("FLEET_CONSUMER_BATCH"))
    # Orchestrators refuse new sagas (503, Retry-After) while even the fastest remote step of a
    # whole second took longer than this (a standing queue: fleet.common.shedding); 0: never.
    shed_target_ms: int = Field(500, ge=0, le=60_000, validation_alias=_env("FLEET_SHED_TARGET_MS"))
    max_body_bytes: int = Field(1_048_576, ge=1024, validation_alias=_env("FLEET_MAX_BODY_BYTES"))
    log_level: str = Field("INFO", validation_alias=_env("FLEET_LOG_LEVEL"))
    log_json: bool = Field(True, validation_alias=_env("FLEET_LOG_JSON"))
    sql_echo: bool = Field(False, validation_alias=_env("FLEET_SQL_ECHO"))
    # Server processes (`fleet serve`, `fleet run`) freeze what startup built out of the garbage
    # collector's full passes; off where many apps start in one process (tests).
    gc_freeze: bool = Field(False, validation_alias=_env("FLEET_GC_FREEZE"))

    @model_validator(mode="after")
    def _refuse_insecure_defaults(self) -> Settings:
        if self.env in ("dev", "test"):
            return self
        problems = []
        if self.admin_password.get_secret_value() == DEV_ADMIN_PASSWORD:
            problems.append("FLEET_ADMIN_PASSWORD must be set (the dev default is refused)")
        if len(self.admin_password.get_secret_value()) < 12:
            problems.append("FLEET_ADMIN_PASSWORD must have at least 12 characters")
        if not (self.jwt_public_key or self.jwt_public_key_file):
            problems.append("FLEET_JWT_PUBLIC_KEY(_FILE) must be set")
        if not self.database_url:
            problems.append("DATABASE_URL must be set")
        if problems:
            raise ValueError(f"insecure settings for env={self.env}: " + "; ".join(problems))
        return self

    @property
    def is_dev(self) -> bool:
        return self.env in ("dev", "test")

    def service_url(self, service: str) -> str | None:
        """The base URL of another service, if configured (`FLEET_<SERVICE>_URL`)."""
        urls = {
            "user": self.user_url,
            "vehicle": self.vehicle_url,
            "trip": self.trip_url,
            "billing": self.billing_url,
        }
        return urls.get(service)

    def database_url_for(self, service: str) -> str:
        """The service's database: `DATABASE_URL` if set, else a SQLite file in the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / (service + '.db')}"
