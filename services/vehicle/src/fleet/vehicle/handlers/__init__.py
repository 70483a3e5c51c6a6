"""Message handlers of the vehicle service: saga commands, trip events, device telemetry."""

from __future__ import annotations

from fleet.common.runtime import ServiceRuntime, Subscription
from fleet.contracts.queues import VEHICLE_COMMANDS, VEHICLE_EVENTS, VEHICLE_TELEMETRY
from fleet.vehicle.handlers.commands import saga_commands
from fleet.vehicle.handlers.telemetry import device_telemetry
from fleet.vehicle.handlers.trip_events import trip_events
from fleet.vehicle.service.pipeline import pipeline_of


def subscriptions(rt: ServiceRuntime) -> list[Subscription]:
    return [
        Subscription(
            VEHICLE_COMMANDS.name,
            VEHICLE_COMMANDS.exchange,
            VEHICLE_COMMANDS.bindings,
            rt.consumer("saga-commands", saga_commands(rt)),
        ),
        Subscription(
            VEHICLE_EVENTS.name,
            VEHICLE_EVENTS.exchange,
            VEHICLE_EVENTS.bindings,
            rt.consumer("trip-events", trip_events),
        ),
        _telemetry(rt),
    ]


def _telemetry(rt: ServiceRuntime) -> Subscription:
    pipeline = pipeline_of(rt)
    return Subscription(
        VEHICLE_TELEMETRY.name,
        VEHICLE_TELEMETRY.exchange,
        VEHICLE_TELEMETRY.bindings,
        device_telemetry(pipeline),
        # Each message waits (unacked) for its batch: the window must hold a few batches.
        prefetch=pipeline.settings.prefetch,
        max_retries=10,
    )
