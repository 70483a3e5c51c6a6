"""The fast store of latest positions: in-process, newest-only, plus a coalesced write-through.

An accepted reading is visible here at once, long before its batch reaches PostgreSQL. The
location cache (L1/L2 Redis, shared by replicas) is written through: at once for an HTTP request
(read your writes), and at most once per vehicle per `interval` for the device queue, so that a
fleet's worth of messages does not turn into as many Redis round trips.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from fleet.common.logging import get_logger
from fleet.vehicle.domain.telemetry import Reading

log = get_logger("fleet.vehicle.positions")

Write = Callable[[uuid.UUID, Reading], Awaitable[None]]


class LatestPositions:
    """Each vehicle's newest accepted reading in this process (least recently moved go first)."""

    def __init__(self, max_vehicles: int = 1_000_000) -> None:
        self.max_vehicles = max_vehicles
        self._latest: OrderedDict[uuid.UUID, Reading] = OrderedDict()

    def put(self, vehicle_id: uuid.UUID, reading: Reading) -> bool:
        """Keep `reading` if it is newer than the one known; True if it was."""
        known = self._latest.get(vehicle_id)
        if known is not None and reading.recorded_at <= known.recorded_at:
            return False
        self._latest[vehicle_id] = reading
        self._latest.move_to_end(vehicle_id)
        if len(self._latest) > self.max_vehicles:
            self._latest.popitem(last=False)
        return True

    def get(self, vehicle_id: uuid.UUID) -> Reading | None:
        return self._latest.get(vehicle_id)


class CoalescedWrites:
    """`mark` now; `run` writes each marked vehicle's newest reading every `interval` seconds."""

    def __init__(self, write: Write, *, interval: float = 0.05) -> None:
        self.write = write
        self.interval = interval
        self._dirty: dict[uuid.UUID, Reading] = {}

    def mark(self, vehicle_id: uuid.UUID, reading: Reading) -> None:
        known = self._dirty.get(vehicle_id)
        if known is None or reading.recorded_at > known.recorded_at:
            self._dirty[vehicle_id] = reading

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()

    async def flush(self) -> None:
        dirty, self._dirty = self._dirty, {}
        for vehicle_id, reading in dirty.items():
            try:
                await self.write(vehicle_id, reading)
            except Exception as exc:  # the cache is an optimisation; the database has it all
                log.warning("position write-through failed", error=f"{type(exc).__name__}: {exc}")
