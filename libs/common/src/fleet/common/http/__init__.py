"""Synchronous calls between services: `ServiceClient` (timeout, retries with jitter, circuit
breaker, fallback) and `Upstreams`, an app's clients by service name (on `FleetState.upstreams`).
"""

from fleet.common.http._client import FallbackFn, Fetched, ServiceClient, UpstreamStatusError
from fleet.common.http._retry import IDEMPOTENT_METHODS, NO_RETRY, RETRY_STATUSES, RetryPolicy
from fleet.common.http._upstreams import Upstreams

__all__ = [
    "IDEMPOTENT_METHODS",
    "NO_RETRY",
    "RETRY_STATUSES",
    "FallbackFn",
    "Fetched",
    "RetryPolicy",
    "ServiceClient",
    "UpstreamStatusError",
    "Upstreams",
]
