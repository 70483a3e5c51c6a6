"""L1: a per-process, size-bounded LRU whose entries expire after a short TTL."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class LocalCache(Generic[T]):
    """An LRU of at most `maxsize` entries, each valid for `ttl` seconds.

    Not thread-safe, and needs no lock: it is used from one event loop and never awaits.
    """

    def __init__(
        self, *, maxsize: int, ttl: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if maxsize < 1 or ttl <= 0:
            raise ValueError("maxsize must be >= 1 and ttl > 0")
        self.maxsize = maxsize
        self.ttl = ttl
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, T]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> tuple[bool, T | None]:
        """(True, value) for a live entry, else (False, None); expired entries are dropped."""
        entry = self._entries.get(key)
        if entry is None:
            return False, None
        expires, value = entry
        if expires <= self._clock():
            del self._entries[key]
            return False, None
        self._entries.move_to_end(key)
        return True, value

    def set(self, key: str, value: T, ttl: float | None = None) -> None:
        self._entries[key] = (self._clock() + (self.ttl if ttl is None else ttl), value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.maxsize:
            self._entries.popitem(last=False)

    def delete(self, key: str) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()
