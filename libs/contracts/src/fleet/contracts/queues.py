"""Who listens to what: each service's durable queues and their bindings (one place to read)."""

from __future__ import annotations

from dataclasses import dataclass

from fleet.common.messaging import ExchangeName
from fleet.contracts import booking, events


@dataclass(frozen=True)
class QueueSpec:
    name: str
    exchange: ExchangeName
    bindings: tuple[str, ...]

    @property
    def service(self) -> str:
        """The service consuming the queue: a queue's name starts with its service's."""
        return self.name.split(".", 1)[0]


USER_COMMANDS = QueueSpec("user.commands", "commands", ("user.*",))
USER_EVENTS = QueueSpec(
    "user.events",
    "events",
    (
        events.TripCancelled.event_type,
        events.TripRejected.event_type,
        events.InvoiceIssued.event_type,
    ),
)
VEHICLE_COMMANDS = QueueSpec("vehicle.commands", "commands", ("vehicle.*",))
VEHICLE_EVENTS = QueueSpec(
    "vehicle.events",
    "events",
    (
        events.TripStarted.event_type,
        events.TripCompleted.event_type,
        events.TripCancelled.event_type,
    ),
)
BILLING_EVENTS = QueueSpec(
    "billing.events",
    "events",
    (
        events.TripCompleted.event_type,
        events.CreditsCaptured.event_type,
        events.CreditsCaptureFailed.event_type,
    ),
)
TRIP_SAGA_REPLIES = QueueSpec("trip.saga-replies", "commands", (booking.REPLY_KEY,))
TRIP_EVENTS = QueueSpec(
    "trip.events", "events", (events.TripCompleted.event_type, events.InvoicePaid.event_type)
)
# trip's replica of billing's tariffs, read by the booking saga's local quote-fare step.
TRIP_TARIFFS = QueueSpec("trip.tariffs", "events", (events.TariffChanged.event_type,))

# Telemetry at fleet scale: devices → vehicle (high prefetch, acked once the batch is stored);
# stored positions of vehicles on a trip → trip tracking (with the trip ends that close streams).
VEHICLE_TELEMETRY = QueueSpec(
    "vehicle.telemetry", "events", (f"{events.VehicleTelemetryReported.event_type}.#",)
)
TRIP_TRACKING = QueueSpec(
    "trip.tracking",
    "events",
    (
        events.VehiclePositionsReported.event_type,
        events.TripCompleted.event_type,
        events.TripCancelled.event_type,
    ),
)

# Every queue above, by service: what the services subscribe (a test compares it with the
# subscriptions of the running platform) and the receiving side of docs/asyncapi.yaml.
QUEUES: tuple[QueueSpec, ...] = (
    USER_COMMANDS,
    USER_EVENTS,
    VEHICLE_COMMANDS,
    VEHICLE_EVENTS,
    VEHICLE_TELEMETRY,
    TRIP_SAGA_REPLIES,
    TRIP_EVENTS,
    TRIP_TARIFFS,
    TRIP_TRACKING,
    BILLING_EVENTS,
)
