"""The one way every remote request is made: on fsspec's I/O event loop, each request an awaitable that
``attempt`` runs.

``attempt`` applies the retry policy (retry.py: transient failures again, with backoff, within a deadline):
every request, at open and at read time, passes through it and through nothing else. The deadline is the
time limit of the request under way (``--timeout``: the front end's CancelToken carries it), so no retry
outlives the request it serves; a request made for no front-end request (opening a source) gets
``OPEN_TIMEOUT_S``: an unreachable server fails the open within that, saying why.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from fsspec.asyn import get_loop, sync
from fsspec.spec import AbstractFileSystem

from zarrfs import cancellation
from zarrfs.sources.remote.retry import GivenUp, retrying

T = TypeVar("T")

# How long a request made for no front-end request may take, its retries included.
OPEN_TIMEOUT_S = 20.0
# What ``run`` waits beyond the deadline for the loop to hand the outcome back (attempts end at the deadline).
HANDOVER_S = 5.0


def deadline() -> float:
    """When requests made now must be done: the time limit of the request this thread works for, if any."""
    token = cancellation.current()
    if token is not None and token.deadline is not None:
        return token.deadline
    return time.monotonic() + OPEN_TIMEOUT_S


async def attempt(request: Callable[[], Awaitable[T]], what: str, within_s: float | None = None) -> T:
    """Make one request (``what`` names it for messages; URLs in it are redacted), retried until
    ``deadline()``, or for ``within_s`` seconds if that ends sooner (a check that may fail without harm)."""
    until = deadline()
    if within_s is not None:
        until = min(until, time.monotonic() + within_s)
    return await retrying(request, what, until)


def run(loop: asyncio.AbstractEventLoop, coroutine: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``coroutine()`` on ``loop`` (a file system's I/O loop) from another thread; wait for its result.
    Cancelled (zarrfs.cancellation) when the request it works for was given up meanwhile."""
    try:
        result: T = sync(loop, coroutine, timeout=max(deadline() - time.monotonic(), 0.0) + HANDOVER_S)
    except GivenUp:
        cancellation.check()
        raise
    return result


def loop_of(fs: AbstractFileSystem) -> asyncio.AbstractEventLoop:
    """The loop requests of ``fs`` run on: its own for an async file system, fsspec's I/O loop otherwise."""
    loop: asyncio.AbstractEventLoop = fs.loop if getattr(fs, "async_impl", False) else get_loop()
    return loop


async def call(fs: AbstractFileSystem, method: str, *args: Any) -> Any:
    """``fs.<method>(*args)``: the coroutine of an async file system, else the method in a thread."""
    if getattr(fs, "async_impl", False):
        return await getattr(fs, "_" + method)(*args)
    return await asyncio.to_thread(getattr(fs, method), *args)
