"""Message handlers of the vehicle service: saga commands and trip events."""

from __future__ import annotations

from fleet.common.runtime import ServiceRuntime, Subscription
from fleet.contracts.queues import VEHICLE_COMMANDS, VEHICLE_EVENTS
from fleet.vehicle.handlers.commands import saga_commands
from fleet.vehicle.handlers.trip_events import trip_events


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
    ]
