"""A bounded write-behind buffer: accepted readings wait here for the next batch write.

Readings are offered in groups (one HTTP request, one device message); a batch takes whole
groups until it holds `batch_rows` readings, or whatever is there `interval` seconds after the
previous write. A group offered with `track=True` gets a future that completes once its batch is
committed (the queue path acks its message then) or fails if the batch is given up.

A failed write keeps the batch at the head of the buffer and retries it with back-off; only an
error that `retryable` rejects `max_attempts` times in a row drops a batch, loudly (log + metric).
Rows count against `capacity` until they are stored, so a database outage fills the buffer and
then refuses new readings instead of growing without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from fleet.common.errors import ServiceUnavailableError
from fleet.common.logging import get_logger

log = get_logger("fleet.vehicle.telemetry")

R = TypeVar("R")
BACKLOG_FACTOR = 10


class BufferFull(ServiceUnavailableError):
    """More readings are waiting to be stored than the buffer may hold: try again shortly."""

    slug = "telemetry-buffer-full"


class BufferClosed(ServiceUnavailableError):
    """The service is shutting down and takes no more readings."""

    slug = "telemetry-closed"


@dataclass(slots=True)
class _Group(Generic[R]):
    rows: Sequence[R]
    done: asyncio.Future[None] | None


class WriteBehindBuffer(Generic[R]):
    def __init__(
        self,
        write: Callable[[list[R]], Awaitable[None]],
        *,
        batch_rows: int = 1000,
        interval: float = 0.2,
        capacity: int = 100_000,
        retryable: Callable[[Exception], bool] = lambda _exc: True,
        max_attempts: int = 5,
        on_dropped: Callable[[int], None] = lambda _n: None,
    ) -> None:
        self._write = write
        self.batch_rows = batch_rows
        self.interval = interval
        self.capacity = capacity
        self._retryable = retryable
        self._max_attempts = max_attempts
        self._on_dropped = on_dropped
        self._groups: deque[_Group[R]] = deque()
        self._rows = 0
        self._full = asyncio.Event()
        self._room = asyncio.Event()
        self._lock = asyncio.Lock()
        self._failures = 0
        self.closed = False

    @property
    def pending(self) -> int:
        """Readings accepted and not yet stored (including a batch being written)."""
        return self._rows

    def offer(self, rows: Sequence[R], *, track: bool = False) -> asyncio.Future[None] | None:
        """Take `rows` now or raise `BufferFull`/`BufferClosed` (the HTTP path: 503)."""
        if self.closed:
            raise BufferClosed("telemetry is not accepted while the service stops")
        if self._rows + len(rows) > self.capacity:
            raise BufferFull(
                f"{self._rows} readings are waiting to be stored; retry in a second",
                retry_after_s=1,
            )
        done = asyncio.get_running_loop().create_future() if track else None
        self._groups.append(_Group(rows, done))
        self._rows += len(rows)
        if self._rows >= self.batch_rows:
            self._full.set()
        return done

    async def put(self, rows: Sequence[R]) -> asyncio.Future[None]:
        """Take `rows` once there is room (the queue path: back-pressure, not refusal)."""
        while True:
            try:
                done = self.offer(rows, track=True)
            except BufferFull:
                self._room.clear()
                await self._room.wait()
                continue
            if done is not None:
                return done

    async def run(self) -> None:
        """Write batches until cancelled."""
        while True:
            if self._rows < self.batch_rows:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.interval):
                        await self._full.wait()
            self._full.clear()
            if not await self.flush_once():
                # The write failed: back off (up to 5 s) before the next attempt.
                await asyncio.sleep(min(5.0, 0.1 * 2 ** min(self._failures, 6)))

    async def flush_once(self) -> bool:
        """Write one batch, if any; False if the write failed and the batch was kept."""
        async with self._lock:
            batch = self._take()
            if not batch:
                return True
            rows = [row for group in batch for row in group.rows]
            try:
                await self._write(rows)
            except Exception as exc:
                return self._failed(batch, rows, exc)
            self._failures = 0
            self._settle(batch, len(rows), None)
            return True

    async def drain(self, within: float) -> int:
        """Refuse new readings, store what is buffered; the number left unstored (lost)."""
        self.closed = True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                while self._groups:
                    if not await self.flush_once():
                        await asyncio.sleep(0.1)
        lost = self._rows
        if lost:
            log.error("telemetry not stored at shutdown", readings=lost)
            self._on_dropped(lost)
            self._settle(list(self._groups), lost, BufferClosed("stopped before storing"))
            self._groups.clear()
        return lost

    def _take(self) -> list[_Group[R]]:
        # Behind (a backlog of several batches): write bigger batches, fewer commits.
        limit = self.batch_rows * (BACKLOG_FACTOR if self._rows > 2 * self.batch_rows else 1)
        batch: list[_Group[R]] = []
        taken = 0
        while self._groups and (not batch or taken + len(self._groups[0].rows) <= limit):
            group = self._groups.popleft()
            batch.append(group)
            taken += len(group.rows)
        return batch

    def _failed(self, batch: list[_Group[R]], rows: list[R], exc: Exception) -> bool:
        self._failures += 1
        if self._retryable(exc) or self._failures < self._max_attempts:
            log.warning(
                "telemetry batch not stored; will retry",
                readings=len(rows),
                attempt=self._failures,
                error=f"{type(exc).__name__}: {exc}"[:500],
            )
            self._groups.extendleft(reversed(batch))
            return False
        log.error("telemetry batch dropped", readings=len(rows), error=repr(exc)[:500])
        self._failures = 0
        self._on_dropped(len(rows))
        self._settle(batch, len(rows), exc)
        return True

    def _settle(self, batch: Sequence[_Group[R]], count: int, exc: Exception | None) -> None:
        self._rows -= count
        for group in batch:
            if group.done is not None and not group.done.done():
                if exc is None:
                    group.done.set_result(None)
                else:
                    group.done.set_exception(exc)
        self._room.set()
