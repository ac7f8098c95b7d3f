"""How every front end (FUSE, the in-process zarr store, HTTP) answers a request for a path of the tree.

1. Answer at once, in the caller's thread, if that needs no chunk made and no source data read (documents,
   directories, known sizes, cached chunks): handing such a call to a worker would cost as much as the rest of
   it (30-40 us for a cached FUSE read).
2. Otherwise run it in a worker and wait at most the time limit; past it, raise RequestTimeout and give the
   request up: its work stops at the next piece (zarrfs.cancellation), so nobody's abandoned work keeps
   threads and cores busy.
3. Requests queue by how far from the source their data lies (``VirtualTree.computed_depth``): each depth has
   its own workers. A chunk of a stored level (a few milliseconds) never waits behind chunks of a coarse
   computed level that need minutes; requests of one depth cost about the same, and only queue behind each
   other. Threads stay bounded: ``workers`` per depth, started when first needed.

The errors a front end maps to its answers (errno values, HTTP statuses) are exported here, from one place:
RequestTimeout (the time limit passed), ChunkReadError (the source could not be read or decoded for a chunk),
SourceChangedError (the source changed since it was opened), FileNotFoundError and IsADirectoryError.
"""

from __future__ import annotations

import concurrent.futures
import math
import os
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from zarrfs import cancellation
from zarrfs.cancellation import CancelToken
from zarrfs.core.levels import ChunkReadError
from zarrfs.core.staleness import SourceChangedError
from zarrfs.core.tree import WouldBlock

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "DEFAULT_WORKERS",
    "ChunkReadError",
    "RequestPolicy",
    "RequestTimeout",
    "SourceChangedError",
    "check_timeout",
]

T = TypeVar("T")

# No request may keep a client waiting longer than this by default.
DEFAULT_TIMEOUT_S = 60.0
# Chunk production releases the GIL in decoders and encoders; a few more threads than cores keep them busy.
DEFAULT_WORKERS = max(4, 2 * (os.cpu_count() or 1))


class RequestTimeout(TimeoutError):
    """A request took longer than the time limit and was given up: an I/O error for that request only."""


def check_timeout(timeout: float) -> float:
    """The time limit in seconds; ValueError unless a positive, finite number. There is no "no limit" (as for
    ``zarrfs mount --timeout``), so that no client can ever hang."""
    if not 0 < timeout < math.inf:  # also refuses NaN
        raise ValueError(f"the time limit must be a positive, finite number of seconds, not {timeout!r}")
    return float(timeout)


class Paths(Protocol):
    """What the policy needs to know of the paths it answers for: a VirtualTree, or a front end's view of
    the tree together with other representations (the HTTP server's)."""

    def computed_depth(self, path: str) -> int: ...


class RequestPolicy:
    """Answers calls of the form ``call(path, *args, blocking=True)`` on the tree's data (``VirtualTree.stat``
    and ``read``, or a front end's own function over them), as the module docstring describes.

    ``answer`` is for threads (a libfuse thread), ``answer_async`` for an asyncio event loop; both raise what
    the call raises, or RequestTimeout. Worker threads start on first use (not before a FUSE daemon forks)."""

    def __init__(
        self, tree: Paths, timeout: float = DEFAULT_TIMEOUT_S, workers: int = DEFAULT_WORKERS
    ) -> None:
        self.tree = tree
        self.timeout = check_timeout(timeout)
        self.workers = workers
        self._lanes: dict[int, concurrent.futures.ThreadPoolExecutor] = {}
        self._lanes_lock = threading.Lock()
        self._closed = False

    def answer(self, call: Callable[..., T], path: str, *args: Any) -> T:
        try:
            return call(path, *args, blocking=False)
        except WouldBlock:
            pass
        future, token = self._submit(call, path, args)
        try:
            return future.result(self.timeout)
        except TimeoutError:
            if future.done():
                raise  # the call's own error
            future.cancel()
            token.cancel()
            raise self._timeout(path) from None
        finally:
            # A failure's traceback keeps this frame: the future holding that failure must not stay with it.
            del future

    async def answer_async(self, call: Callable[..., T], path: str, *args: Any) -> T:
        import asyncio  # here: a FUSE daemon never needs it, and it is a tenth of the daemon's imports

        try:
            return call(path, *args, blocking=False)
        except WouldBlock:
            pass
        future, token = self._submit(call, path, args)
        waited = asyncio.wrap_future(future)
        del future
        try:
            await asyncio.wait((waited,), timeout=self.timeout)
            if not waited.done():
                raise self._timeout(path)
            return waited.result()
        except BaseException:  # over the time limit, or the awaiting task was cancelled
            if not waited.done():
                waited.cancel()  # and the worker's future with it, if it has not started
                token.cancel()
            raise
        finally:
            del waited  # as in ``answer``

    def close(self) -> None:
        """Drop queued requests; running ones end on their own (or at their time limit)."""
        with self._lanes_lock:
            self._closed = True
            lanes, self._lanes = list(self._lanes.values()), {}
        for lane in lanes:
            lane.shutdown(wait=False, cancel_futures=True)

    def _timeout(self, path: str) -> RequestTimeout:
        return RequestTimeout(f"request for {path} took longer than {self.timeout:g} s")

    def _lane(self, depth: int) -> concurrent.futures.ThreadPoolExecutor:
        with self._lanes_lock:
            lane = self._lanes.get(depth)
            if lane is None:
                if self._closed:
                    raise RuntimeError("the request policy is closed")
                lane = self._lanes[depth] = concurrent.futures.ThreadPoolExecutor(
                    self.workers, thread_name_prefix=f"zarrfs-depth{depth}"
                )
            return lane

    def _submit(
        self, call: Callable[..., T], path: str, args: tuple[Any, ...]
    ) -> tuple[concurrent.futures.Future[T], CancelToken]:
        token = CancelToken(time.monotonic() + self.timeout)
        lane = self._lane(self.tree.computed_depth(path))
        return lane.submit(_run_for, token, call, path, *args), token


def _run_for(token: CancelToken, call: Callable[..., T], path: str, *args: Any) -> T:
    with cancellation.working_for(token):
        cancellation.check()  # given up while it waited in the queue
        return call(path, *args)
