"""SQL repository of vehicles."""

from __future__ import annotations

import datetime as dt
import math
import uuid
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    Select,
    bindparam,
    func,
    literal_column,
    select,
    true,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.common.db import utcnow
from fleet.common.errors import ConflictError
from fleet.common.native import fetch_rows, rows_changed
from fleet.vehicle.adapters.tables import vehicles
from fleet.vehicle.domain.search import Circle
from fleet.vehicle.domain.status import LOW_BATTERY_PCT, VehicleStatus
from fleet.vehicle.domain.vehicles import Vehicle

Keyset = tuple[dt.datetime, uuid.UUID]

# Columns the aggregate owns; the device token hash never leaves the repository.
_ENTITY_COLUMNS = [c for c in vehicles.c if c.name != "device_token_hash"]
_MUTABLE = (
    "model",
    "seats",
    "status",
    "battery_pct",
    "lat",
    "lon",
    "position_recorded_at",
    "odometer_km",
    "reserved_trip_id",
)

# The booking saga's hot paths run these per call: built once, executed with parameters.
_GET = select(*_ENTITY_COLUMNS).where(vehicles.c.id == bindparam("p_id"))
_LOCK = _GET.with_for_update()
_RESERVED_FOR = select(*_ENTITY_COLUMNS).where(
    vehicles.c.reserved_trip_id == bindparam("p_trip_id")
)
_SAVE = (
    update(vehicles)
    .where(vehicles.c.id == bindparam("p_id"), vehicles.c.version == bindparam("p_version"))
    .values({name: bindparam(name) for name in (*_MUTABLE, "version", "updated_at")})
)


# `status = 'available'` written into the statement, not bound as a parameter: the partial
# position index (`WHERE status = 'available'`) serves only a statement whose text implies its
# predicate. With a parameter, PostgreSQL's cached generic plan of the prepared statement — which
# it takes after five executions when the table has no statistics yet, as a fresh fleet's has
# not — cannot use that index and reads every available vehicle through `ix_vehicles_status`.
_AVAILABLE = vehicles.c.status == literal_column(f"'{VehicleStatus.AVAILABLE.value}'")


def _nearest_statement() -> Select[Any]:
    """The available vehicle nearest a point in a box that neither wraps nor spans the globe
    (a local circle's), ranked by a flat-earth distance; rows other transactions hold skipped."""
    dlat = vehicles.c.lat - bindparam("p_lat")
    dlon = vehicles.c.lon - bindparam("p_lon")
    return (
        select(*_ENTITY_COLUMNS)
        .where(
            _AVAILABLE,
            vehicles.c.lat.between(bindparam("p_min_lat"), bindparam("p_max_lat")),
            vehicles.c.lon.between(bindparam("p_min_lon"), bindparam("p_max_lon")),
        )
        .order_by(dlat * dlat + dlon * dlon * bindparam("p_scale"), vehicles.c.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )


_NEAREST = _nearest_statement()

# How many available vehicles the nearest-neighbour bound looks past: more than the bookings
# that may lock candidates near the same pickup at once, so that one of them is usually free.
KNN_BOUND = 16


def _bounded_nearest_statement() -> Select[Any]:
    """PostgreSQL: `_NEAREST`'s answer without ranking every available vehicle of the circle.

    The GiST index on the available vehicles' `point(lon, lat)` gives, in a few index steps,
    the distance `d` in plain degrees to the `KNN_BOUND`-th nearest available vehicle. The
    ranking distance S = sqrt(dlat² + cos²(lat)·dlon²) is at most that plain one, so every
    vehicle with S ≤ d lies in the box dlat ≤ d, dlon ≤ d / cos(lat), which the same index
    answers; among those the nearest unlocked one by S is returned. It is the nearest unlocked
    vehicle of all unless every vehicle with S ≤ d is locked by other bookings: then nothing is
    returned and the caller asks `_NEAREST`. `d` is at most `p_radius` (the circle's radius in
    degrees of latitude; also `d` when fewer vehicles than the bound are available), so the box
    never spans more than the circle's.
    """
    lat = bindparam("p_lat", type_=Float)
    lon = bindparam("p_lon", type_=Float)
    cos_lat = bindparam("p_cos", type_=Float)
    pos = func.point(vehicles.c.lon, vehicles.c.lat)
    here = func.point(lon, lat)
    plain = pos.op("<->", return_type=Float)(here)
    kth = (
        select(plain)
        .where(_AVAILABLE)
        .order_by(plain)
        .offset(KNN_BOUND - 1)
        .limit(1)
        .scalar_subquery()
    )
    radius = bindparam("p_radius", type_=Float)
    bound = (  # never wider than the circle: a far fleet is not ranked when none is near
        select(func.least(func.coalesce(kth, radius), radius).label("d"))
        .cte("bound")
        .prefix_with("MATERIALIZED")  # computed once, not once per reference below
    )
    d = bound.c.d
    box = func.box(func.point(lon - d / cos_lat, lat - d), func.point(lon + d / cos_lat, lat + d))
    dlat, dlon = vehicles.c.lat - lat, vehicles.c.lon - lon
    ranking = dlat * dlat + dlon * dlon * bindparam("p_scale", type_=Float)
    return (
        select(*_ENTITY_COLUMNS)
        .select_from(bound.join(vehicles, true()))
        .where(
            _AVAILABLE,
            pos.op("<@", is_comparison=True)(box),
            ranking <= d * d,
        )
        .order_by(ranking, vehicles.c.id)
        .limit(1)
        .with_for_update(skip_locked=True, of=vehicles)
    )


_BOUNDED_NEAREST = _bounded_nearest_statement()


class StaleVehicleError(ConflictError):
    """Someone else saved the vehicle between our read and our write."""


def _vehicle(row: Any) -> Vehicle:
    """A vehicle from a row by column name (a SQLAlchemy `Row` or an asyncpg `Record`)."""
    m = getattr(row, "_mapping", row)
    values = {c.name: m[c.name] for c in _ENTITY_COLUMNS}
    values["status"] = VehicleStatus(values["status"])
    return Vehicle(**values)


class SqlVehicleRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, vehicle: Vehicle, device_token_hash: str) -> None:
        values = {c.name: getattr(vehicle, c.name) for c in _ENTITY_COLUMNS}
        values["status"] = vehicle.status.value
        await self.session.execute(
            vehicles.insert().values(**values, device_token_hash=device_token_hash)
        )

    async def get(self, vehicle_id: uuid.UUID, *, for_update: bool = False) -> Vehicle | None:
        """The vehicle; with `for_update`, its row stays locked until the transaction ends."""
        stmt = _LOCK if for_update else _GET
        row = (await self.session.execute(stmt, {"p_id": vehicle_id})).first()
        return _vehicle(row) if row else None

    async def vin_taken(self, vin: str) -> bool:
        stmt = select(vehicles.c.id).where(vehicles.c.vin == vin)
        return (await self.session.execute(stmt)).first() is not None

    async def device_token_hash(self, vehicle_id: uuid.UUID) -> str | None:
        stmt = select(vehicles.c.device_token_hash).where(vehicles.c.id == vehicle_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def save(self, vehicle: Vehicle) -> None:
        """Write the vehicle back if nobody saved it since it was read (optimistic version)."""
        now = utcnow()
        values: dict[str, Any] = {name: getattr(vehicle, name) for name in _MUTABLE}
        values["status"] = vehicle.status.value
        values.update(
            p_id=vehicle.id, p_version=vehicle.version, version=vehicle.version + 1, updated_at=now
        )
        if await rows_changed(self.session, _SAVE, values) != 1:
            raise StaleVehicleError(f"vehicle {vehicle.id} was changed concurrently; retry")
        vehicle.version += 1
        vehicle.updated_at = now

    async def search(
        self,
        *,
        status: VehicleStatus | None,
        area: Circle | None,
        after: Keyset | None,
        limit: int,
    ) -> list[Vehicle]:
        """Newest first; with `area`, only its bounding box (callers check the exact distance)."""
        stmt = select(*_ENTITY_COLUMNS)
        if status is not None:
            stmt = stmt.where(vehicles.c.status == status.value)
        if area is not None:
            stmt = stmt.where(*self._in_box(area))
        if after is not None:
            stmt = stmt.where(tuple_(vehicles.c.created_at, vehicles.c.id) < tuple_(*after))
        stmt = stmt.order_by(vehicles.c.created_at.desc(), vehicles.c.id.desc()).limit(limit)
        return [_vehicle(r) for r in await self.session.execute(stmt)]

    async def reserved_for(self, trip_id: uuid.UUID) -> Vehicle | None:
        row = (await self.session.execute(_RESERVED_FOR, {"p_trip_id": trip_id})).first()
        return _vehicle(row) if row else None

    async def available_in_box(self, area: Circle) -> list[Vehicle]:
        stmt = select(*_ENTITY_COLUMNS).where(_AVAILABLE, *self._in_box(area))
        return [_vehicle(r) for r in await self.session.execute(stmt)]

    async def nearest_available(self, area: Circle) -> Vehicle | None:
        """The available vehicle of a local circle's box nearest its centre, locked.

        Ranked in SQL by a flat-earth distance (callers check the radius), so a booking reads
        one row, not every vehicle in the box. Rows other transactions hold are skipped
        (PostgreSQL): concurrent bookings each take a different vehicle instead of queueing
        behind the nearest one's lock.
        """
        if not area.is_local:
            raise ValueError("a flat-earth ranking needs a local circle")
        min_lat, max_lat, min_lon, max_lon = area.box()
        params = {
            "p_lat": area.lat,
            "p_lon": area.lon,
            "p_scale": math.cos(math.radians(area.lat)) ** 2,
            "p_min_lat": min_lat,
            "p_max_lat": max_lat,
            "p_min_lon": min_lon,
            "p_max_lon": max_lon,
        }
        if self.session.get_bind().dialect.name == "postgresql":
            bounded = params | {
                "p_cos": math.cos(math.radians(area.lat)),
                "p_radius": max_lat - area.lat,  # the radius in degrees of latitude
            }
            rows = await fetch_rows(self.session, _BOUNDED_NEAREST, bounded)
            if rows:
                return _vehicle(rows[0])
        row = (await self.session.execute(_NEAREST, params)).first()
        return _vehicle(row) if row else None

    @staticmethod
    def _in_box(area: Circle) -> list[ColumnElement[bool]]:
        min_lat, max_lat, min_lon, max_lon = area.box()
        conds: list[ColumnElement[bool]] = [vehicles.c.lat.between(min_lat, max_lat)]
        if max_lon - min_lon >= 360:
            return conds
        # A box crossing the antimeridian wraps: keep both sides of it.
        if min_lon < -180 or max_lon > 180:
            west, east = (min_lon + 360, max_lon) if min_lon < -180 else (min_lon, max_lon - 360)
            conds.append((vehicles.c.lon >= west) | (vehicles.c.lon <= east))
        else:
            conds.append(vehicles.c.lon.between(min_lon, max_lon))
        return conds

    async def count_by_status(self) -> dict[VehicleStatus, int]:
        stmt = select(vehicles.c.status, func.count()).group_by(vehicles.c.status)
        return {VehicleStatus(s): n for s, n in await self.session.execute(stmt)}

    async def count_low_battery(self) -> int:
        stmt = select(func.count()).where(vehicles.c.battery_pct < LOW_BATTERY_PCT)
        return int((await self.session.execute(stmt)).scalar_one())
