"""A thread-safe LRU cache bounded in bytes, where concurrent requests for one key compute it once.

Shared by the core (encoded chunks) and by sources (decoded blocks larger than one chunk).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from zarrfs import cancellation
from zarrfs.cancellation import Cancelled

V = TypeVar("V")
E = TypeVar("E", bound=BaseException)

# Memory an entry takes beyond its value's bytes: its key (a tuple with a chunk index), the OrderedDict node,
# the value's object header (a numpy array's is over 100 bytes) and the allocator's rounding. Measured with
# tracemalloc over 20,000 one-pixel chunks served in-process: 556 bytes per raw chunk entry, 347 per entry
# (pixels and encoded bytes) for compressed output; doubled for what RSS adds (allocator headers, partly
# used pages). Counted against the capacity, so tiny values cannot hold many times the budget.
ENTRY_OVERHEAD_BYTES = 1024


@dataclass(frozen=True)
class CacheStats:
    hits: int
    misses: int
    evictions: int
    entries: int
    size_bytes: int
    capacity_bytes: int


def without_tracebacks(error: E) -> E:
    """``error``, and the errors it was raised from or while handling, stripped of their tracebacks.

    For a failure kept to hand to another thread: its traceback's frames (and every caller of theirs) would
    stay alive with it, with their buffers, and as soon as one of them leads back to whatever keeps the error
    (a worker's frame holds its task), that is a reference cycle that only the cyclic collector frees, which
    an idle daemon never runs. Failures are reported by their message, never by their traceback."""
    pending: list[BaseException] = [error]
    seen: set[int] = set()
    while pending:
        link = pending.pop()
        if id(link) not in seen:
            seen.add(id(link))
            link.__traceback__ = None
            pending.extend(linked for linked in (link.__cause__, link.__context__) if linked is not None)
    return error


class ChunkCache(Protocol[V]):
    """What the levels of a dataset ask of their cache: a ByteLRUCache, or a ScopedCache view of one shared
    by many datasets."""

    def get_or_compute(self, key: Hashable, compute: Callable[[], V]) -> V: ...

    def peek(self, key: Hashable) -> V | None: ...


class _Pending(Generic[V]):
    """A computation under way; waiters block on ``done`` and then read ``value`` or ``error``."""

    __slots__ = ("done", "error", "value")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: V | None = None
        self.error: BaseException | None = None


class ByteLRUCache(Generic[V]):
    """Maps keys to values of ``sizeof(value)`` bytes, evicting least recently used entries beyond
    ``capacity_bytes``; each entry also counts ``entry_overhead`` bytes for the objects that hold it.
    Failures are not cached: the next request for the key computes it again.

    A value larger than the whole capacity is returned but not kept, so memory stays bounded whatever the
    request pattern; with ``keep_oversized`` it is kept alone instead (for values so costly to make that
    holding one beats making it again for every request, such as one huge decoded strip).
    """

    def __init__(
        self,
        capacity_bytes: int,
        sizeof: Callable[[V], int] = len,  # type: ignore[assignment]  # values without len() pass their own
        keep_oversized: bool = False,
        entry_overhead: int = ENTRY_OVERHEAD_BYTES,
    ) -> None:
        if capacity_bytes < 0:
            raise ValueError("cache capacity must not be negative")
        self.capacity_bytes = capacity_bytes
        self._sizeof = sizeof
        self._keep_oversized = keep_oversized
        self._entry_overhead = entry_overhead
        self._entries: OrderedDict[Hashable, V] = OrderedDict()
        self._pending: dict[Hashable, _Pending[V]] = {}
        self._size = 0
        self._hits = 0
        self._misses = 0
        self._evictions = 0
        self._lock = threading.Lock()

    def get_or_compute(self, key: Hashable, compute: Callable[[], V]) -> V:
        """The cached value of ``key``, else the one ``compute()`` makes (once for all concurrent callers).

        A computation cancelled because the request it ran for was given up (Cancelled) is as if it never
        happened: a caller that waited for it and still wants the value computes it again.
        """
        while True:
            with self._lock:
                if key in self._entries:
                    self._entries.move_to_end(key)
                    self._hits += 1
                    return self._entries[key]
                pending = self._pending.get(key)
                owner = pending is None
                if owner:
                    pending = self._pending[key] = _Pending[V]()
                    self._misses += 1
                else:
                    self._hits += 1
            assert pending is not None
            if owner:
                try:
                    return self._compute(key, pending, compute)
                finally:
                    del pending  # a failure's traceback keeps this frame (see below)
            pending.done.wait()
            error = pending.error
            if error is None:
                return pending.value  # type: ignore[return-value]
            del pending  # a failed wait leaves nothing in this frame that leads back to the error
            if isinstance(error, Cancelled):
                del error
                cancellation.check()  # unless this caller's own request was given up too
                continue
            try:
                raise error
            finally:
                # The traceback keeps this frame: holding the error here too would make a reference cycle,
                # which keeps the failed computation's buffers until the cyclic collector runs.
                del error

    def _compute(self, key: Hashable, pending: _Pending[V], compute: Callable[[], V]) -> V:
        try:
            value = compute()
        except BaseException as error:
            pending.error = without_tracebacks(error)
            with self._lock:
                del self._pending[key]
            pending.done.set()
            del pending  # the traceback keeps this frame: no way back from it to the error (see above)
            raise
        pending.value = value
        with self._lock:
            del self._pending[key]
            self._insert(key, value)
        pending.done.set()
        return value

    def peek(self, key: Hashable) -> V | None:
        """The value if it is cached, else None, without computing it or waiting for a computation under way:
        for callers that must answer at once or hand the work elsewhere."""
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
                self._hits += 1
            return value

    def _footprint(self, value: V) -> int:
        return self._sizeof(value) + self._entry_overhead

    def _insert(self, key: Hashable, value: V) -> None:
        size = self._footprint(value)
        if size > self.capacity_bytes and not self._keep_oversized:
            return
        self._entries[key] = value
        self._size += size
        while self._size > self.capacity_bytes and len(self._entries) > 1:
            _, evicted = self._entries.popitem(last=False)
            self._size -= self._footprint(evicted)
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


class ScopedCache(Generic[V]):
    """One dataset's view of a cache that several datasets share (a repository's, within one --cache-size):
    its keys are the dataset's own keys under ``scope``, so that datasets whose levels have the same names
    and chunk indices never read each other's entries. ``scope`` must name the served bytes (a repository
    node's files by identity, see zarrfs.core.repository): a dataset reopened on unchanged files finds the
    chunks it made before."""

    def __init__(self, shared: ByteLRUCache[V], scope: Hashable) -> None:
        self.shared = shared
        self.scope = scope

    def get_or_compute(self, key: Hashable, compute: Callable[[], V]) -> V:
        return self.shared.get_or_compute((self.scope, key), compute)

    def peek(self, key: Hashable) -> V | None:
        return self.shared.peek((self.scope, key))
