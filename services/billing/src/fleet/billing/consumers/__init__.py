"""Message consumers of the billing service, the queues they listen on, and its start-up."""

from __future__ import annotations

from functools import partial

from fleet.billing.adapters.metrics import PaymentMetrics
from fleet.billing.consumers import events
from fleet.billing.service.tariffs import ANNOUNCE_INTERVAL_S, announce_tariffs
from fleet.common.runtime import ServiceRuntime, Subscription, every
from fleet.contracts.queues import BILLING_EVENTS

PAYMENT_METRICS = "payment_metrics"


async def startup(rt: ServiceRuntime) -> None:
    """Create the payment metrics once per app; announce the tariffs now and periodically."""
    rt.extras[PAYMENT_METRICS] = PaymentMetrics(rt.platform.registry)
    rt.spawn("tariff-announcer", lambda: every(ANNOUNCE_INTERVAL_S, partial(announce_tariffs, rt)))


def subscriptions(rt: ServiceRuntime) -> list[Subscription]:
    metrics: PaymentMetrics = rt.extras[PAYMENT_METRICS]
    settle = rt.consumer("events", events.billing_events(rt, metrics))
    return [
        Subscription(BILLING_EVENTS.name, BILLING_EVENTS.exchange, BILLING_EVENTS.bindings, settle),
    ]
