"""A thread-safe LRU cache bounded in bytes, where concurrent requests for one key compute it once."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass


@dataclass(frozen=True)
class CacheStats:
    hits: int
    misses: int
    evictions: int
    entries: int
    size_bytes: int
    capacity_bytes: int


class _Pending:
    """A computation under way; waiters block on ``done`` and then read ``value`` or ``error``."""

    __slots__ = ("done", "error", "value")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: bytes | None = None
        self.error: BaseException | None = None


class ByteLRUCache:
    """Maps keys to ``bytes`` values, evicting least recently used entries beyond ``capacity_bytes``.

    A value larger than the whole capacity is returned but not kept, so memory stays bounded whatever the
    request pattern. Failures are not cached: the next request for the key computes it again.
    """

    def __init__(self, capacity_bytes: int) -> None:
        if capacity_bytes < 0:
            raise ValueError("cache capacity must not be negative")
        self.capacity_bytes = capacity_bytes
        self._entries: OrderedDict[Hashable, bytes] = OrderedDict()
        self._pending: dict[Hashable, _Pending] = {}
        self._size = 0
        self._hits = 0
        self._misses = 0
        self._evictions = 0
        self._lock = threading.Lock()

    def get_or_compute(self, key: Hashable, compute: Callable[[], bytes]) -> bytes:
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
                self._hits += 1
                return value
            pending = self._pending.get(key)
            owner = pending is None
            if owner:
                pending = self._pending[key] = _Pending()
                self._misses += 1
            else:
                self._hits += 1
        assert pending is not None
        if not owner:
            pending.done.wait()
            if pending.error is not None:
                raise pending.error
            assert pending.value is not None
            return pending.value
        try:
            value = compute()
        except BaseException as error:
            pending.error = error
            with self._lock:
                del self._pending[key]
            pending.done.set()
            raise
        pending.value = value
        with self._lock:
            del self._pending[key]
            self._insert(key, value)
        pending.done.set()
        return value

    def _insert(self, key: Hashable, value: bytes) -> None:
        if len(value) > self.capacity_bytes:
            return
        self._entries[key] = value
        self._size += len(value)
        while self._size > self.capacity_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._size -= len(evicted)
            self._evictions += 1

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(
                hits=self._hits,
                misses=self._misses,
                evictions=self._evictions,
                entries=len(self._entries),
                size_bytes=self._size,
                capacity_bytes=self.capacity_bytes,
            )
