"""Dropping work that nobody waits for any more.

A front end gives each request it runs in a worker a token; the work done for it, in that thread and in the
threads it fans out to, runs "for" that token (``working_for``). When the front end gives up on the request
(its time limit passed), it cancels the token, and the next ``check`` in that work raises Cancelled: a chunk
of a coarse level that needs minutes stops between two pieces instead of occupying threads and cores for
nobody. Work done for no request (a library caller) has no token and is never cancelled.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar


class Cancelled(BaseException):
    """The request this work was for was given up. A BaseException, as asyncio.CancelledError is, so that no
    ``except Exception`` on the way turns it into an ordinary failure (such as a failed chunk)."""


class CancelToken:
    """Set once, by whoever gives up on a request. ``deadline`` (a ``time.monotonic()`` time, None: none) is
    when the request's time limit passes: work that can wait (a remote request's retries) stops there."""

    __slots__ = ("cancelled", "deadline")

    def __init__(self, deadline: float | None = None) -> None:
        self.cancelled = False
        self.deadline = deadline

    def cancel(self) -> None:
        self.cancelled = True


_current: ContextVar[CancelToken | None] = ContextVar("zarrfs_request", default=None)


def current() -> CancelToken | None:
    """The token of the request this thread works for, if any (work handed to other threads takes it)."""
    return _current.get()


@contextlib.contextmanager
def working_for(token: CancelToken | None) -> Iterator[None]:
    """Run the body on behalf of the request of ``token`` (None: of no request)."""
    reset = _current.set(token)
    try:
        yield
    finally:
        _current.reset(reset)


def check() -> None:
    """Raise Cancelled if the request this thread works for was given up."""
    token = _current.get()
    if token is not None and token.cancelled:
        raise Cancelled
