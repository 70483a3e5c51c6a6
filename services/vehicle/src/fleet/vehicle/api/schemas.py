"""Request and response bodies of the vehicle API."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    StringConstraints,
    field_validator,
    model_validator,
)

from fleet.common.db import utcnow
from fleet.common.numbers import WHOLE
from fleet.common.text import MULTI_LINE_SCHEMA, ONE_LINE_SCHEMA, multi_line, one_line
from fleet.vehicle.domain.diagnostics import Severity
from fleet.vehicle.domain.status import VehicleStatus
from fleet.vehicle.domain.telemetry import MAX_BATCH, MAX_SPEED_KPH, check_recorded_at
from fleet.vehicle.domain.vin import VIN_PATTERN


def _stripped(max_length: int) -> StringConstraints:
    return StringConstraints(strip_whitespace=True, min_length=1, max_length=max_length)


ModelName = Annotated[str, _stripped(64), AfterValidator(one_line), ONE_LINE_SCHEMA]
Code = Annotated[str, _stripped(32), AfterValidator(one_line), ONE_LINE_SCHEMA]
Message = Annotated[str, _stripped(2000), AfterValidator(multi_line), MULTI_LINE_SCHEMA]
Lat = Annotated[float, Field(ge=-90, le=90, strict=True, allow_inf_nan=False)]
Lon = Annotated[float, Field(ge=-180, le=180, strict=True, allow_inf_nan=False)]
Seats = Annotated[int, Field(ge=1, le=9, strict=True), WHOLE]
Percent = Annotated[float, Field(ge=0, le=100, strict=True, allow_inf_nan=False)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VehicleIn(Strict):
    vin: str = Field(
        max_length=64,
        description="17 characters, A-Z and 0-9 without I, O, Q (either case; trimmed)",
        # Documented only: `normalize_vin` enforces it, naming what is wrong.
        json_schema_extra={"pattern": VIN_PATTERN},
    )
    model: ModelName
    seats: Seats
    lat: Lat
    lon: Lon
    battery_pct: Percent = 100.0


class VehiclePatch(Strict):
    status: Literal["available", "maintenance", "offline"] | None = None
    model: ModelName | None = None
    seats: Seats | None = None


class VehicleOut(BaseModel):
    id: uuid.UUID
    vin: str
    model: str
    seats: int
    status: VehicleStatus
    battery_pct: float
    lat: float
    lon: float
    odometer_km: float
    position_recorded_at: dt.datetime | None = None
    reserved_trip_id: uuid.UUID | None = Field(None, description="operators only")
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime


class VehicleCreated(VehicleOut):
    device_token: str = Field(
        description="Secret for `X-Device-Token` on telemetry; shown only in this answer"
    )


class ReadingIn(Strict):
    lat: Lat
    lon: Lon
    speed_kph: float = Field(ge=0, le=MAX_SPEED_KPH, strict=True, allow_inf_nan=False)
    battery_pct: Percent
    recorded_at: AwareDatetime = Field(
        description="When the device measured it, with a time zone; at most 5 minutes ahead of "
        "the server's clock"
    )

    @field_validator("recorded_at", mode="before")
    @classmethod
    def _iso_8601(cls, value: Any) -> Any:
        # Pydantic would read a number as Unix time (`0` is 1970): the API takes ISO-8601 only.
        if isinstance(value, int | float):
            raise ValueError("recorded_at is an ISO-8601 date-time string, not a number")
        return value

    @field_validator("recorded_at")
    @classmethod
    def _not_in_future(cls, value: dt.datetime) -> dt.datetime:
        return check_recorded_at(value, utcnow())


class TelemetryIn(RootModel[Annotated[list[ReadingIn], Field(min_length=1, max_length=MAX_BATCH)]]):
    """One reading, or a list of up to 1000."""

    @model_validator(mode="before")
    @classmethod
    def _one_or_many(cls, data: Any) -> Any:
        return [data] if isinstance(data, dict) else data


class TelemetryAccepted(BaseModel):
    accepted: int


class LocationOut(BaseModel):
    vehicle_id: uuid.UUID
    lat: float
    lon: float
    recorded_at: dt.datetime | None = Field(
        description="time of the latest telemetry; null until the vehicle reports"
    )


class FleetStatusOut(BaseModel):
    total: int
    by_status: dict[str, int]
    low_battery: int
    active_trips: int


class DiagnosticIn(Strict):
    vehicle_id: uuid.UUID
    code: Code
    severity: Severity
    message: Message


class DiagnosticOut(BaseModel):
    id: uuid.UUID
    vehicle_id: uuid.UUID
    code: str
    severity: Severity
    message: str
    created_at: dt.datetime
