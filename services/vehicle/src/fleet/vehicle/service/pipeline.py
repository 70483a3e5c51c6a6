"""The telemetry pipeline: accept readings fast, store them in batches, feed trip tracking.

Both ingestion paths (HTTP and the `vehicle.telemetry` queue) come here. A reading that passed
validation is put in the latest-position store at once (what GET …/location serves) and in the
write-behind buffer; the buffer's writer stores a batch in one transaction — one COPY, one UPDATE
moving each vehicle at most once (newest only), and one `vehicle.positions` event in the outbox
carrying the batch's readings of vehicles held for a trip.

Durability: HTTP's 202 means "accepted into this process's buffer" — a crash loses at most the
readings of the last ~200 ms (shutdown stores them first). The queue path acks a message only
once its batch is committed, so a crash redelivers it instead (a redelivery after a commit stores
its readings twice; consumers of telemetry treat (vehicle_id, recorded_at) as the identity).
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from sqlalchemy.exc import DBAPIError

from fleet.common.app import not_found
from fleet.common.db import utcnow
from fleet.common.errors import UnauthorizedError
from fleet.common.runtime import ServiceRuntime
from fleet.contracts.events import TripPosition, VehiclePositionsReported
from fleet.vehicle.adapters.location_cache import EXTRAS_KEY, Location, LocationCache
from fleet.vehicle.adapters.positions import CoalescedWrites, LatestPositions
from fleet.vehicle.adapters.telemetry import Row, SqlTelemetryRepository
from fleet.vehicle.adapters.vehicles import SqlVehicleRepository
from fleet.vehicle.config import TelemetrySettings
from fleet.vehicle.domain.devices import device_token_matches
from fleet.vehicle.domain.telemetry import Reading, latest, newest_by_vehicle
from fleet.vehicle.domain.vehicles import Vehicle
from fleet.vehicle.service.buffer import WriteBehindBuffer


class _Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.accepted = Counter(
            "telemetry_accepted_total", "Readings accepted, by path.", ["path"], registry=registry
        )
        self.stored = Counter("telemetry_stored_total", "Readings stored.", registry=registry)
        self.dropped = Counter(
            "telemetry_dropped_total", "Accepted readings never stored.", registry=registry
        )
        self.refused = Counter(
            "telemetry_refused_total", "Readings refused: buffer full.", registry=registry
        )
        self.pending = Gauge(
            "telemetry_buffer_readings", "Readings waiting to be stored.", registry=registry
        )
        self.batch = Histogram(
            "telemetry_batch_seconds", "Time to store one batch.", registry=registry
        )


def _retryable(exc: Exception) -> bool:
    """Connection trouble heals; a batch the database refuses for its content does not."""
    if isinstance(exc, DBAPIError):
        text = str(exc).lower()
        return bool(exc.connection_invalidated) or "connection" in text or "deadlock" in text
    return isinstance(exc, OSError | TimeoutError)


class TelemetryPipeline:
    def __init__(self, rt: ServiceRuntime, settings: TelemetrySettings | None = None) -> None:
        self.rt = rt
        self.settings = settings or TelemetrySettings()
        self.metrics = _Metrics(rt.platform.registry)
        self.latest = LatestPositions()
        self.coalesced = CoalescedWrites(
            self._write_through, interval=self.settings.cache_every_ms / 1000
        )
        self.buffer: WriteBehindBuffer[Row] = WriteBehindBuffer(
            self.store_batch,
            batch_rows=self.settings.batch_rows,
            interval=self.settings.flush_ms / 1000,
            capacity=self.settings.capacity,
            retryable=_retryable,
            on_dropped=self.metrics.dropped.inc,
        )
        # Device token hashes of known vehicles: vehicles are never deleted and tokens never
        # change, so a hit saves a query per request without ever going stale.
        self._tokens: OrderedDict[uuid.UUID, str] = OrderedDict()
        self.metrics.pending.set_function(lambda: self.buffer.pending)

    def start(self) -> None:
        self.rt.spawn("telemetry-writer", self.buffer.run)
        self.rt.spawn("telemetry-positions", self.coalesced.run)

    async def stop(self) -> None:
        await self.buffer.drain(self.settings.drain_timeout_s)
        await self.coalesced.flush()

    async def check_sender(self, vehicle_id: uuid.UUID, device_token: str | None) -> None:
        """404 for an unknown vehicle; 401 unless the token (if any) is this vehicle's."""
        stored = await self._token_hash(vehicle_id)
        if stored is None:
            raise not_found("vehicle", vehicle_id)
        if device_token is not None and not device_token_matches(device_token, stored):
            raise UnauthorizedError("the device token is not this vehicle's")

    async def accept(self, vehicle_id: uuid.UUID, readings: Sequence[Reading]) -> int:
        """Take readings now (HTTP); `BufferFull`/`BufferClosed` (503) if they cannot wait.

        The location cache is written through before answering: the sender reads its write.
        """
        try:
            self.buffer.offer([(vehicle_id, r) for r in readings])
        except Exception:
            self.metrics.refused.inc(len(readings))
            raise
        newest = self._seen(vehicle_id, readings, "http")
        if newest is not None:
            await self._write_through(vehicle_id, newest)
        return len(readings)

    async def ingest(self, vehicle_id: uuid.UUID, readings: Sequence[Reading]) -> None:
        """Take readings when there is room and return once they are stored (queue path)."""
        done = await self.buffer.put([(vehicle_id, r) for r in readings])
        newest = self._seen(vehicle_id, readings, "amqp")
        if newest is not None:
            self.coalesced.mark(vehicle_id, newest)
        await done

    def latest_of(self, vehicle_id: uuid.UUID) -> Reading | None:
        """The newest position this process accepted (its row may not have it yet)."""
        return self.latest.get(vehicle_id)

    def fresher(self, location: Location) -> Location:
        """`location`, or the newer position accepted here and not yet stored or cached."""
        newest = self.latest.get(location.vehicle_id)
        if newest is None or (
            location.recorded_at is not None and newest.recorded_at <= location.recorded_at
        ):
            return location
        return Location(location.vehicle_id, newest.lat, newest.lon, newest.recorded_at)

    def overlay(self, vehicle: Vehicle) -> Vehicle:
        """`vehicle` at the newest position accepted here (read your writes before the flush)."""
        newest = self.latest.get(vehicle.id)
        if newest is not None:
            vehicle.apply_reading(newest)
        return vehicle

    async def store_batch(self, rows: list[Row]) -> None:
        """One transaction: readings, vehicles moved, positions of held vehicles to the outbox."""
        started = time.perf_counter()
        now = utcnow()
        async with self.rt.transaction() as session:
            repo = SqlTelemetryRepository(session)
            held = await repo.holders(list({vid for vid, _ in rows}))
            # Unknown vehicles were refused at the door; this only guards against a vanished row.
            known = (
                rows
                if len(held) == len({v for v, _ in rows})
                else [row for row in rows if row[0] in held]
            )
            await repo.move_vehicles(newest_by_vehicle(known), now)
            await repo.add_rows(known, now)
            positions = [
                TripPosition(
                    vehicle_id=vid,
                    trip_id=held[vid],
                    lat=r.lat,
                    lon=r.lon,
                    speed_kph=r.speed_kph,
                    recorded_at=r.recorded_at,
                )
                for vid, r in known
                if held.get(vid) is not None
            ]
            if positions:
                await self.rt.publish(
                    session,
                    VehiclePositionsReported(positions=positions),
                    aggregate_type="telemetry-batch",
                    aggregate_id=uuid.uuid4(),
                )
        self.metrics.stored.inc(len(known))
        self.metrics.dropped.inc(len(rows) - len(known))
        self.metrics.batch.observe(time.perf_counter() - started)

    def _seen(
        self, vehicle_id: uuid.UUID, readings: Sequence[Reading], path: str
    ) -> Reading | None:
        """Count the readings; the newest one if it moved the vehicle (else None)."""
        self.metrics.accepted.labels(path).inc(len(readings))
        newest = latest(readings)
        if newest is not None and self.latest.put(vehicle_id, newest):
            return newest
        return None

    async def _write_through(self, vehicle_id: uuid.UUID, reading: Reading) -> None:
        located: LocationCache | None = self.rt.extras.get(EXTRAS_KEY)
        if located is not None:
            await located.moved(Location(vehicle_id, reading.lat, reading.lon, reading.recorded_at))

    async def _token_hash(self, vehicle_id: uuid.UUID) -> str | None:
        stored = self._tokens.get(vehicle_id)
        if stored is not None:
            return stored
        async with self.rt.db.session() as session:
            stored = await SqlVehicleRepository(session).device_token_hash(vehicle_id)
        if stored is not None:
            self._tokens[vehicle_id] = stored
            if len(self._tokens) > 1_000_000:
                self._tokens.popitem(last=False)
        return stored


async def accept_telemetry(
    pipeline: TelemetryPipeline,
    vehicle_id: uuid.UUID,
    readings: Sequence[Reading],
    device_token: str | None,
) -> int:
    """The HTTP use case: check the sender, take the readings (stored within ~200 ms)."""
    await pipeline.check_sender(vehicle_id, device_token)
    return await pipeline.accept(vehicle_id, readings)


def pipeline_of(rt: ServiceRuntime) -> TelemetryPipeline:
    pipeline: TelemetryPipeline = rt.extras["telemetry"]
    return pipeline


async def start(rt: ServiceRuntime) -> None:
    """Startup hook (after the location cache): the pipeline and its background writers."""
    pipeline = TelemetryPipeline(rt)
    rt.extras["telemetry"] = pipeline
    pipeline.start()


async def stop(rt: ServiceRuntime) -> None:
    """Shutdown hook (before the location cache closes): store what is buffered."""
    pipeline = rt.extras.get("telemetry")
    if isinstance(pipeline, TelemetryPipeline):
        await pipeline.stop()
