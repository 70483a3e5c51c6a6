"""Request and response bodies of the billing API."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from fleet.common.geo import Point

InvoiceStatus = Literal["issued", "paid", "failed"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TariffIn(Strict):
    base_cents: int = Field(ge=0, le=100_000)
    per_km_cents: int = Field(ge=0, le=100_000)
    per_min_cents: int = Field(ge=0, le=100_000)


class TariffOut(BaseModel):
    vehicle_model: str
    base_cents: int
    per_km_cents: int
    per_min_cents: int


class QuoteIn(Strict):
    pickup: Point
    dropoff: Point
    vehicle_model: str | None = Field(None, max_length=64)


class QuoteOut(BaseModel):
    fare_cents: int
    distance_km: float
    duration_min: float


class InvoiceOut(BaseModel):
    id: uuid.UUID
    trip_id: uuid.UUID
    rider_id: uuid.UUID
    amount_cents: int
    status: InvoiceStatus
    failure_reason: str | None = None
    distance_km: float | None = None
    duration_min: float | None = None
    created_at: dt.datetime
    updated_at: dt.datetime
