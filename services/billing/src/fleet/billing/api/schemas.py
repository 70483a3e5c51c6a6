"""Request and response bodies of the billing API."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from fleet.common.geo import Point
from fleet.common.numbers import WHOLE
from fleet.common.text import OneLine

InvoiceStatus = Literal["issued", "paid", "failed"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Strict: money is never parsed from strings, floats or booleans (`false` is not 0 cents).
Cents = Annotated[int, Field(strict=True, ge=0, le=100_000), WHOLE]


class TariffIn(Strict):
    base_cents: Cents
    per_km_cents: Cents
    per_min_cents: Cents


class TariffOut(BaseModel):
    vehicle_model: str
    base_cents: int
    per_km_cents: int
    per_min_cents: int


class QuotePoint(Point):
    """A position in a request: numbers only (`false` or "37.5" is a client bug, not a place)."""

    model_config = ConfigDict(extra="forbid")

    lat: float = Field(strict=True, ge=-90, le=90, allow_inf_nan=False)
    lon: float = Field(strict=True, ge=-180, le=180, allow_inf_nan=False)


class QuoteIn(Strict):
    pickup: QuotePoint
    dropoff: QuotePoint
    vehicle_model: OneLine | None = Field(None, max_length=64)


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
