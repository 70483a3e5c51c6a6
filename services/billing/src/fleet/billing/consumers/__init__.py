"""Message consumers of the billing service and the queues they listen on."""

from __future__ import annotations

from fleet.billing.adapters.metrics import PaymentMetrics
from fleet.billing.consumers import commands, events
from fleet.billing.consumers._inbox import consumer_with_after_commit
from fleet.common.participant import saga_participant
from fleet.common.runtime import ServiceRuntime, Subscription
from fleet.contracts.queues import BILLING_COMMANDS, BILLING_EVENTS

PAYMENT_METRICS = "payment_metrics"


async def startup(rt: ServiceRuntime) -> None:
    """Create the payment metrics once per app, on the app's registry."""
    rt.extras[PAYMENT_METRICS] = PaymentMetrics(rt.platform.registry)


def subscriptions(rt: ServiceRuntime) -> list[Subscription]:
    metrics: PaymentMetrics = rt.extras[PAYMENT_METRICS]
    quote = rt.consumer("commands", saga_participant(rt, commands.HANDLERS))
    settle = consumer_with_after_commit(rt, "events", events.billing_events(rt, metrics))
    return [
        Subscription(
            BILLING_COMMANDS.name, BILLING_COMMANDS.exchange, BILLING_COMMANDS.bindings, quote
        ),
        Subscription(BILLING_EVENTS.name, BILLING_EVENTS.exchange, BILLING_EVENTS.bindings, settle),
    ]
