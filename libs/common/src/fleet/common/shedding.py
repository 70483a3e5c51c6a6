"""Load shedding on queueing delay: refuse new work while a standing queue delays the old.

An orchestrator that keeps accepting work past its machine's capacity does not just get slow: its
queues grow until steps of the work already accepted time out, the timeouts start compensations,
and the compensations are more work in the same queues. Throughput collapses while the input stays
the same (measured: 60 bookings/s offered to a stack that could confirm ≈ 35/s confirmed 6/s and
rejected four bookings in five, every one after a step timeout).

`QueueDelayShedder` watches the delay the accepted work meets (for the booking saga: each remote
step's time from dispatch to reply, which contains every queue on the way) and says when to refuse
new work, with CoDel's signal (Nichols & Jacobson, RFC 8289): a queue is *standing*, not a burst,
when even the fastest sample of a whole interval exceeds the target. While one stands, new work is
refused (the HTTP path answers 503 with `Retry-After`), so the queue drains and the work in it
finishes in time. One fast sample lifts it at once, and so does an interval without samples (no
work in flight is no queue).

Refusing all new work while a queue stands is blunt: the queue drains, the machine may idle for a
moment, and one fast sample lets a burst in. Pacing arrivals at a fraction of the completion rate
instead was built and measured (seventh session, docs/performance-history.md): at 1.4 times the
capacity it confirmed more (41 against 34 bookings/s, though at a faster moment of a drifting
machine), but at 1.8 times the refused requests themselves (HTTP, authentication, a problem
document) took the orchestrator's event loop from the replies, completions fell, the pace followed
them down, and it confirmed 18/s against this rule's 28/s (at a slower moment).

No shared state: each replica decides from the delays its own consumers see, which competing
consumers make the same for every replica.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

Clock = Callable[[], float]


class QueueDelayShedder:
    """Whether to refuse new work now, from samples of the delay admitted work meets.

    `target_s`: the delay a standing queue may add before new work is refused; `0` disables
    shedding. `interval_s`: how long every sample must stay above the target (CoDel's interval;
    longer than a burst, shorter than the timeouts the queue would cause).
    """

    def __init__(self, target_s: float, interval_s: float = 1.0, clock: Clock = time.monotonic):
        if target_s < 0 or interval_s <= 0:
            raise ValueError("target_s must be ≥ 0 and interval_s > 0")
        self.target_s = target_s
        self.interval_s = interval_s
        self._clock = clock
        self._window_start = clock()
        self._window_min = math.inf  # fastest sample of the current interval
        self._last_min = math.inf  # … of the previous one (inf: it had none)

    @property
    def enabled(self) -> bool:
        return self.target_s > 0

    def observe(self, seconds: float) -> None:
        """One sample: the delay one piece of admitted work met."""
        self._roll()
        self._window_min = min(self._window_min, seconds)

    def admit(self) -> bool:
        """May one new piece of work start now? Not while a standing queue is above the target."""
        return not self.overloaded()

    def overloaded(self) -> bool:
        """True while a standing queue is above the target: refuse new work."""
        if not self.enabled:
            return False
        return self.standing_delay_s() is not None and self._window_min > self.target_s

    def standing_delay_s(self) -> float | None:
        """The fastest sample of the last full interval if it was above the target (a standing
        queue), else None."""
        self._roll()
        standing = self.enabled and self.target_s < self._last_min < math.inf
        return self._last_min if standing else None

    def _roll(self) -> None:
        now = self._clock()
        elapsed = now - self._window_start
        if elapsed < self.interval_s:
            return
        # An interval with no sample at all, after the last full one, leaves nothing standing.
        self._last_min = self._window_min if elapsed < 2 * self.interval_s else math.inf
        self._window_min = math.inf
        self._window_start = now
