"""The trip service's feature flags (overridable with FLEET_FLAGS / FLEET_FLAG_<NAME>)."""

from __future__ import annotations

from fleet.common.flags import FeatureFlags, Flag

ROUTE_ESTIMATOR_V2 = "route_estimator_v2"

FLAGS = (
    Flag(
        ROUTE_ESTIMATOR_V2,
        rollout=0,
        description="Road-aware route estimates (detour factor, boarding time) for POST /routes",
    ),
)


def trip_flags() -> FeatureFlags:
    return FeatureFlags(FLAGS)
