"""Device telemetry from the `vehicle.telemetry` queue.

No inbox here: readings are not effects to apply once but measurements to keep, and claiming an
inbox row per message would cost as much as storing its readings. The message is acked when this
handler returns, which is after the batch holding its readings committed: a crash before that
redelivers it. A message that can never be stored (not a telemetry message, a reading from the
future, an unknown vehicle) goes to the dead-letter queue at once.
"""

from __future__ import annotations

from fleet.common.db import utcnow
from fleet.common.errors import NotFoundError
from fleet.common.messaging import Envelope, Handler, MalformedMessage, default_registry
from fleet.contracts.events import VehicleTelemetryReported
from fleet.vehicle.domain.telemetry import Reading, check_recorded_at
from fleet.vehicle.service.pipeline import TelemetryPipeline


def readings_of(message: VehicleTelemetryReported) -> list[Reading]:
    now = utcnow()
    try:
        return [
            Reading(
                lat=r.lat,
                lon=r.lon,
                speed_kph=r.speed_kph,
                battery_pct=r.battery_pct,
                recorded_at=check_recorded_at(r.recorded_at, now),
            )
            for r in message.readings
        ]
    except ValueError as exc:
        raise MalformedMessage(f"vehicle.telemetry: {exc}") from None


def device_telemetry(pipeline: TelemetryPipeline) -> Handler:
    async def on_telemetry(envelope: Envelope) -> None:
        message = default_registry.parse_as(envelope, VehicleTelemetryReported)
        readings = readings_of(message)
        try:
            await pipeline.check_sender(message.vehicle_id, None)
        except NotFoundError as exc:
            raise MalformedMessage(exc.detail) from None
        await pipeline.ingest(message.vehicle_id, readings)

    return on_telemetry
