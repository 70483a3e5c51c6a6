"""Who publishes what: the sending side of `queues` (one place to read).

Keys are routing keys: every registered message's `event_type`, and the saga's reply key.
Values are the senders: a service, or `DEVICE` (a vehicle's on-board unit, on the broker
directly). docs/asyncapi.yaml is generated from this table and `queues`; tests/contracts checks
it against the messages the running platform publishes.
"""

from __future__ import annotations

from fleet.contracts import booking, events

DEVICE = "device"

PRODUCERS: dict[str, tuple[str, ...]] = {
    # trip: the booking saga's commands and the trip's life
    booking.ReserveCredits.event_type: ("trip",),
    booking.ReleaseCredits.event_type: ("trip",),
    booking.ReserveVehicle.event_type: ("trip",),
    booking.ReleaseVehicle.event_type: ("trip",),
    booking.SendConfirmation.event_type: ("trip",),
    booking.SendCancellation.event_type: ("trip",),
    events.TripConfirmed.event_type: ("trip",),
    events.TripRejected.event_type: ("trip",),
    events.TripStarted.event_type: ("trip",),
    events.TripCompleted.event_type: ("trip",),
    events.TripCancelled.event_type: ("trip",),
    # the saga's participants answer its commands
    booking.REPLY_KEY: ("user", "vehicle"),
    # billing invoices completed trips, user captures the credits, billing settles
    events.InvoiceIssued.event_type: ("billing",),
    events.CreditsCaptured.event_type: ("user",),
    events.CreditsCaptureFailed.event_type: ("user",),
    events.InvoicePaid.event_type: ("billing",),
    events.InvoiceFailed.event_type: ("billing",),
    events.TariffChanged.event_type: ("billing",),
    # telemetry: devices → vehicle → trip tracking
    events.VehicleTelemetryReported.event_type: (DEVICE,),
    events.VehiclePositionsReported.event_type: ("vehicle",),
}

# Other routing keys a message may travel under; `{name}` is one word, the payload's `name`.
ROUTING_KEY_VARIANTS: dict[str, tuple[str, ...]] = {
    events.VehicleTelemetryReported.event_type: (
        f"{events.VehicleTelemetryReported.event_type}.{{vehicle_id}}",
    ),
}

# Events no queue of the platform is bound to: published for readers outside it. Why each is.
OUTWARD: dict[str, str] = {
    events.TripConfirmed.event_type: (
        "The booking succeeded; inside the platform the saga itself tells the rider "
        "(user.send-confirmation)."
    ),
    events.InvoiceFailed.event_type: (
        "The credits could not pay the invoice; inside the platform user already released the "
        "hold when it refused the capture."
    ),
}
