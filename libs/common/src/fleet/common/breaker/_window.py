"""The rolling window behind the error-rate rule (opossum's rollingCountTimeout / Buckets)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    index: int
    calls: int = 0
    failures: int = 0


class RollingWindow:
    """Outcomes of the last `seconds`, kept in `buckets` time slots.

    A slot ages out as a whole, so the window is exact to within one slot width (1 s with the
    defaults): cheap enough to record on every call, without keeping one entry per call.
    """

    def __init__(
        self, clock: Callable[[], float], seconds: float = 10.0, buckets: int = 10
    ) -> None:
        if seconds <= 0 or buckets < 1:
            raise ValueError("a rolling window needs a positive length and at least one bucket")
        self._clock = clock
        self._width = seconds / buckets
        self._size = buckets
        self._buckets: deque[_Bucket] = deque()

    def _current(self) -> _Bucket:
        index = int(self._clock() // self._width)
        while self._buckets and self._buckets[0].index <= index - self._size:
            self._buckets.popleft()
        if not self._buckets or self._buckets[-1].index != index:
            self._buckets.append(_Bucket(index))
        return self._buckets[-1]

    def record(self, *, ok: bool) -> None:
        bucket = self._current()
        bucket.calls += 1
        if not ok:
            bucket.failures += 1

    def counts(self) -> tuple[int, int]:
        """(calls, failures) inside the window."""
        self._current()
        return sum(b.calls for b in self._buckets), sum(b.failures for b in self._buckets)

    @property
    def failure_rate(self) -> float:
        calls, failures = self.counts()
        return failures / calls if calls else 0.0

    def clear(self) -> None:
        self._buckets.clear()
