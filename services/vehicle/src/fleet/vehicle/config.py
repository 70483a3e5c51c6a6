"""Tuning of the telemetry pipeline, from the environment (defaults suit one 2-core replica)."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _env(name: str) -> AliasChoices:
    return AliasChoices(name)


class TelemetrySettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", populate_by_name=True)

    # A batch is written when it has this many readings, or `flush_ms` after the last write.
    batch_rows: int = Field(1000, ge=1, le=50_000, validation_alias=_env("FLEET_TELEMETRY_BATCH"))
    flush_ms: int = Field(200, ge=5, le=10_000, validation_alias=_env("FLEET_TELEMETRY_FLUSH_MS"))
    # Accepted readings not yet stored; beyond it HTTP answers 503 and the queue path waits.
    capacity: int = Field(
        100_000, ge=1, le=10_000_000, validation_alias=_env("FLEET_TELEMETRY_BUFFER")
    )
    # Unacked device messages in flight; each waits for the batch holding its readings.
    prefetch: int = Field(1000, ge=1, le=65_535, validation_alias=_env("FLEET_TELEMETRY_PREFETCH"))
    # Device-queue positions reach the location cache (L1/L2, Redis) at most this often per
    # vehicle; each write is a Redis round trip, so a fleet's rate must not become Redis's rate.
    cache_every_ms: int = Field(
        1000, ge=5, le=60_000, validation_alias=_env("FLEET_TELEMETRY_CACHE_MS")
    )
    drain_timeout_s: float = Field(
        10.0, ge=0, le=300, validation_alias=_env("FLEET_TELEMETRY_DRAIN_S")
    )
