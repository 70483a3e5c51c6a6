"""The seed's payment metrics (PaymentService), on the app's Prometheus registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from fleet.billing.domain.payments import PAYMENT_METHOD, amount_range, error_type

# Capture normally answers within seconds; the tail covers a user service that is down for a while.
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)


class PaymentMetrics:
    """Attempts (an invoice asks for its capture), outcomes and time from issue to outcome.

    Callers record only what a committed transaction did, so retries and rollbacks never count.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.attempts = Counter(
            "payment_attempts_total",
            "Payments requested (invoices issued), by method and amount range in currency units.",
            ["method", "amount_range"],
            registry=registry,
        )
        self.successes = Counter("payment_success_total", "Payments captured.", registry=registry)
        self.failures = Counter(
            "payment_failure_total",
            "Payments that failed, by error type.",
            ["error_type"],
            registry=registry,
        )
        self.duration = Histogram(
            "payment_processing_duration_seconds",
            "Time from an invoice's issue to its payment's outcome.",
            buckets=DURATION_BUCKETS,
            registry=registry,
        )

    def attempted(self, amount_cents: int) -> None:
        self.attempts.labels(PAYMENT_METHOD, amount_range(amount_cents)).inc()

    def succeeded(self, seconds: float) -> None:
        self.successes.inc()
        self.duration.observe(max(seconds, 0.0))

    def failed(self, reason: str, seconds: float) -> None:
        self.failures.labels(error_type(reason)).inc()
        self.duration.observe(max(seconds, 0.0))
