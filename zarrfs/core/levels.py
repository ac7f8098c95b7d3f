"""Resolution levels as pixels on the served chunk grid: stored ones read from the source, computed ones
(see pyramid.py) derived from the level above. Chunk pixels go through the shared cache."""

from __future__ import annotations

import functools
import logging
import math
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

import numpy as np

from zarrfs import cancellation
from zarrfs.core.staleness import SourceChangedError
from zarrfs.lru import ByteLRUCache, ChunkCache, without_tracebacks
from zarrfs.sources import ImageSource

log = logging.getLogger(__name__)

ChunkIndex = tuple[int, ...]
CachedValue = bytes | np.ndarray | int  # chunk pixels, encoded chunks, exact sizes of encoded chunks
T = TypeVar("T")


class ChunkReadError(OSError):
    """A chunk could not be produced (source read or decode failed); front ends report an I/O error."""


def cached_nbytes(value: CachedValue) -> int:
    if isinstance(value, int):
        return 0  # a remembered size: the cache counts its entry's overhead
    return value.nbytes if isinstance(value, np.ndarray) else len(value)


def new_cache(capacity_bytes: int) -> ByteLRUCache[CachedValue]:
    """The cache of chunk pixels and encoded chunks that all levels and layouts share."""
    return ByteLRUCache(capacity_bytes, sizeof=cached_nbytes)


class PixelLevel(ABC):
    """One resolution level: shape, little-endian dtype and the served chunk grid, with cached chunk pixels.

    Subclasses say where pixels come from (``read_region``); ``downsampling`` records how the level was made
    from level 0 (per-axis factor) and ``first_pixel_centre`` where the centre of its first pixel lies (per
    axis, in level-0 pixels), which the NGFF metadata turns into scale and translation.
    """

    downsampling: tuple[float, ...]
    first_pixel_centre: tuple[float, ...]
    # Reductions between this level and one the source stores (0 for a stored level): how much work one chunk
    # can take, by which front ends keep cheap requests from queueing behind costly ones.
    computed_depth = 0

    def __init__(
        self,
        name: str,
        shape: tuple[int, ...],
        dtype: np.dtype,
        chunks: tuple[int, ...],
        cache: ChunkCache[CachedValue],
        fill_value: int | float | bool | complex,
        fanout: FanOut,
    ) -> None:
        self.name = name
        self.fanout = fanout  # makes the chunks a region needs concurrently
        self.fill_value = fill_value  # what edge-chunk padding holds, and the arrays' Zarr fill value
        self.shape = shape
        self.dtype = dtype.newbyteorder("<")
        self.chunks = chunks
        self.cache = cache
        self.grid = tuple(math.ceil(extent / chunk) for extent, chunk in zip(shape, chunks, strict=True))

    @abstractmethod
    def read_region(self, region: tuple[slice, ...]) -> np.ndarray:
        """Pixels of ``region`` (inside the shape): an array of exactly that shape."""

    def chunk_region(self, index: ChunkIndex) -> tuple[slice, ...]:
        return tuple(
            slice(i * chunk, min((i + 1) * chunk, extent))
            for i, chunk, extent in zip(index, self.chunks, self.shape, strict=True)
        )

    def chunk_indices(self) -> Iterator[ChunkIndex]:
        return np.ndindex(*self.grid)

    def contains(self, index: ChunkIndex) -> bool:
        return len(index) == len(self.grid) and all(0 <= i < n for i, n in zip(index, self.grid, strict=True))

    def chunk_pixels(self, index: ChunkIndex) -> np.ndarray:
        """The full-size chunk (edge chunks padded with the fill value), read-only, C-contiguous."""
        value = self.cache.get_or_compute(("pixels", self.name, index), lambda: self._make_chunk(index))
        assert isinstance(value, np.ndarray)
        return value

    def _make_chunk(self, index: ChunkIndex) -> np.ndarray:
        region = self.chunk_region(index)
        try:
            pixels = self.read_region(region)
        except (ChunkReadError, SourceChangedError):
            raise  # a chunk of the level above failed, or the source changed, and said so
        except Exception as error:
            log.error("level %s chunk %s: source read failed: %s", self.name, index, error)
            raise ChunkReadError(f"cannot read chunk {index} of level {self.name}: {error}") from error
        if pixels.shape != self.chunks:
            # Edge chunks are stored full-size, padded with the fill value, as Zarr requires.
            padded = np.full(self.chunks, self.fill_value, dtype=self.dtype)
            padded[tuple(slice(0, extent) for extent in pixels.shape)] = pixels
            pixels = padded
        pixels = np.ascontiguousarray(pixels, dtype=self.dtype)
        pixels.setflags(write=False)
        return pixels

    def read_through_chunks(self, region: tuple[slice, ...]) -> np.ndarray:
        """Pixels of ``region`` assembled from cached chunks: how a computed level reads the level above, so
        that each chunk here is made once however many coarser chunks need it. Chunks not cached yet are made
        concurrently: one coarse chunk can need thousands of them, down to the stored level."""
        out = np.empty(tuple(part.stop - part.start for part in region), dtype=self.dtype)
        indices = self.chunks_covering(region)
        chunks = self.fanout.run([functools.partial(self.chunk_pixels, index) for index in indices])
        for chunk_index, pixels in zip(indices, chunks, strict=True):
            have = self.chunk_region(chunk_index)
            overlap = [
                (max(w.start, h.start), min(w.stop, h.stop)) for w, h in zip(region, have, strict=True)
            ]
            into_out = tuple(
                slice(lo - w.start, hi - w.start) for (lo, hi), w in zip(overlap, region, strict=True)
            )
            into_chunk = tuple(
                slice(lo - h.start, hi - h.start) for (lo, hi), h in zip(overlap, have, strict=True)
            )
            out[into_out] = pixels[into_chunk]
        return out

    def chunks_covering(self, region: tuple[slice, ...]) -> list[ChunkIndex]:
        """The indices of the chunks that hold pixels of ``region``."""
        first = [part.start // chunk for part, chunk in zip(region, self.chunks, strict=True)]
        last = [(part.stop - 1) // chunk for part, chunk in zip(region, self.chunks, strict=True)]
        return [
            tuple(a + i for a, i in zip(first, offset, strict=True))
            for offset in np.ndindex(*(b - a + 1 for a, b in zip(first, last, strict=True)))
        ]

    def cached_chunk_pixels(self, index: ChunkIndex) -> np.ndarray | None:
        """``chunk_pixels(index)`` if the cache holds it, else None: never makes the chunk."""
        value = self.cache.peek(("pixels", self.name, index))
        assert value is None or isinstance(value, np.ndarray)
        return value


class _Task(Generic[T]):
    """One call of a batch, run by whichever thread claims it first: a pool worker or the batch's caller,
    either way for the request the batch was made for (its cancellation token)."""

    __slots__ = ("call", "claim", "done", "error", "token", "value")

    def __init__(self, call: Callable[[], T]) -> None:
        self.call: Callable[[], T] | None = call
        self.claim = threading.Lock()
        self.done = threading.Event()
        self.token = cancellation.current()
        self.value: T | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        if not self.claim.acquire(blocking=False):
            return  # already run, or running in another thread
        call, self.call = self.call, None
        assert call is not None
        try:
            with cancellation.working_for(self.token):
                cancellation.check()  # between two pieces: a given-up request starts no more of them
                self.value = call()
        except BaseException as error:
            self.error = without_tracebacks(error)
        self.done.set()
        # A failure's traceback keeps this frame: it must not lead back to the error through the task.
        del self

    def result(self) -> T:
        self.done.wait()
        # Handed over once: the pool's queue may still hold this task, and must not keep a chunk (or an error
        # with its buffers) alive outside the cache's accounting.
        value, self.value = self.value, None
        error, self.error = self.error, None
        if error is None:
            return value  # type: ignore[return-value]
        try:
            raise error
        finally:
            del error  # the traceback keeps this frame: no cycle through this local


class FanOut:
    """Runs batches of calls for one dataset: its own pool of workers (one per core), made on first use so
    that no thread exists before a FUSE daemon has forked, and ended with the dataset."""

    def __init__(self, workers: int | None = None) -> None:
        self._workers = workers or os.cpu_count() or 2
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _started(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="zarrfs-fanout")
            return self._pool

    def run(self, calls: list[Callable[[], T]]) -> list[T]:
        """The results of ``calls``, made by the pool's workers and by the calling thread together.

        The caller runs every call no worker has started, so it only ever waits for calls already running.
        That keeps nested batches deadlock-free however few workers there are and however many threads (FUSE
        workers, pool workers inside an outer batch) make batches at once: a running call waits only for
        calls one level finer, which finish the same way. A failed call raises its error here, in the
        caller. Calls run for the caller's request (see zarrfs.cancellation): once it is given up, calls not
        started yet raise Cancelled instead of running.
        """
        tasks = [_Task(call) for call in calls]
        if len(tasks) > 1:
            pool = self._started()
            for task in tasks[1:]:
                pool.submit(task.run)
        for task in tasks:
            task.run()
        results: list[T] = []
        try:
            for task in tasks:
                results.append(task.result())
        except BaseException:
            # The traceback keeps this frame: neither the other tasks, which may still get errors of their
            # own, nor the results made so far may stay alive with it.
            tasks.clear()
            results.clear()
            raise
        return results

    def close(self) -> None:
        """End the workers. Calls they had not started are run by the callers that made them (see ``run``),
        so none is lost."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


class StoredLevel(PixelLevel):
    """A level the source stores (level 0, or a reduced level of a stored pyramid)."""

    def __init__(
        self,
        source: ImageSource,
        level: int,
        chunks: tuple[int, ...],
        cache: ChunkCache[CachedValue],
        fanout: FanOut | None = None,
    ) -> None:
        """``fanout`` is the dataset's; a level made on its own (as in tests) gets one of its own."""
        shape = source.info.levels[level].shape
        fill = source.info.fill
        super().__init__(str(level), shape, source.info.dtype, chunks, cache, fill, fanout or FanOut())
        self.source = source
        self.level = level
        full = source.info.levels[0].shape
        self.downsampling = tuple(a / b for a, b in zip(full, shape, strict=True))
        # How a file's pyramid was made is not recorded; its writers average blocks, centred on them.
        self.first_pixel_centre = tuple((factor - 1) / 2 for factor in self.downsampling)

    def read_region(self, region: tuple[slice, ...]) -> np.ndarray:
        return self.source.read_region(self.level, region)
