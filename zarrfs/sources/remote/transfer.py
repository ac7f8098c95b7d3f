"""The one way every remote request is made: on fsspec's I/O event loop, each request an awaitable that
``attempt`` runs.

``attempt`` is the seam for the retry policy (retries with backoff of errors it classifies as transient,
within a deadline): every request, at open and at read time, passes through it and through nothing else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from fsspec.asyn import get_loop, sync
from fsspec.spec import AbstractFileSystem

T = TypeVar("T")

# A request that has not completed after this long is abandoned (and fails the read that needed it).
REQUEST_TIMEOUT_S = 60.0


async def attempt(request: Callable[[], Awaitable[T]], what: str) -> T:
    """Make one request (``what`` names it for messages: it holds no credentials)."""
    return await request()


def run(loop: asyncio.AbstractEventLoop, coroutine: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``coroutine()`` on ``loop`` (a file system's I/O loop) from another thread; wait for its result."""
    result: T = sync(loop, coroutine, timeout=REQUEST_TIMEOUT_S)
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
