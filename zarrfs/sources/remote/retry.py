"""Retrying remote requests: transient failures again, with backoff, until the request's deadline.

Which failures are transient was found by provoking each against a fault-injecting proxy
(tests/proxies.py) in front of nginx and moto's S3, through fsspec's HTTPFileSystem (aiohttp) and s3fs
(aiobotocore); see ``classify``:

- An HTTP status, wherever the library keeps it: aiohttp's ``ClientResponseError.status``, botocore's
  ``ClientError.response["ResponseMetadata"]["HTTPStatusCode"]`` (s3fs raises an OSError, PermissionError or
  FileNotFoundError with that ClientError as ``__cause__``; fsspec's HTTP ``info`` a FileNotFoundError with
  the ClientResponseError as its cause), or a ``status`` attribute. 408, 429, 500, 502, 503 and 504 are
  transient; 412 (a pinned request's If-Match failed) means the object changed: ``ObjectChangedError``; any
  other status (403, 404, 416, ...) is final.
- Without a status: a connection refused, reset or closed (aiohttp ``ClientConnectionError``:
  ``ClientConnectorError``, ``ServerDisconnectedError``, ``ClientOSError``; botocore
  ``EndpointConnectionError``, ``ConnectionClosedError``; ``ConnectionError``), a body cut short (aiohttp
  ``ClientPayloadError``, botocore ``ResponseStreamingError``/``IncompleteReadError``, ``http.client``'s
  ``IncompleteRead``) and a timeout (``TimeoutError``: fsspec's ``FSTimeoutError``, aiohttp's
  ``ServerTimeoutError``; botocore ``ReadTimeoutError``/``ConnectTimeoutError``) are transient. A plain
  FileNotFoundError or PermissionError, and everything else, is final.

Final failures are raised unchanged (``status_of`` tells their status), so that an open can say "not found"
or "access denied". A transient failure is retried while the deadline allows the wait before the next
attempt; each attempt is itself cut off at the deadline, so no retry outlives it. Then
``RemoteUnavailable`` (a RemoteError: EIO for a chunk, 502 over HTTP; ``RemoteDeadline`` when the deadline
passed: 504). A request that was given up (``zarrfs.cancellation``) stops within 50 ms, also in the middle
of an attempt.

Clients must not retry on their own, or their retries multiply ours and ignore the deadline: s3fs needs
``S3_CONFIG_WITHOUT_RETRIES`` and ``retries = 1`` (filesystems.py). aiohttp alone repeats a request once
when a kept-alive connection turns out to be closed, which is harmless: it costs no time.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import http.client
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from zarrfs import cancellation
from zarrfs.errors import one_line
from zarrfs.sources.remote.identity import ObjectChangedError, RemoteError
from zarrfs.sources.remote.urls import redact_text

log = logging.getLogger(__name__)
T = TypeVar("T")

TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
PRECONDITION_FAILED = 412
# How often a waiting retry looks whether its request was given up.
CANCEL_POLL_S = 0.05
# For s3fs.S3FileSystem(**options): no retries of s3fs (its ``retries`` attribute is set after construction
# by the caller: S3FileSystem does not take it as an argument) and none of botocore.
S3_CONFIG_WITHOUT_RETRIES: dict[str, Any] = {"retries": {"mode": "standard", "total_max_attempts": 1}}


class Verdict(enum.Enum):
    TRANSIENT = "transient"  # worth another attempt
    CHANGED = "changed"  # the object is no longer the one opened
    FINAL = "final"  # another attempt would fail the same way


class RemoteUnavailable(RemoteError):
    """Every attempt of a request failed transiently until the deadline: an I/O error for the chunk that
    needed it (an HTTP front end answers 502 Bad Gateway), a one-line error at open."""


class RemoteDeadline(RemoteUnavailable):
    """The deadline passed before a request succeeded (an HTTP front end answers 504 Gateway Timeout)."""


class GivenUp(Exception):
    """The request this work was for was given up (``zarrfs.cancellation``). An Exception, not
    ``cancellation.Cancelled``: fsspec's ``sync`` hands only Exceptions back to the calling thread, where
    ``cancellation.check()`` then raises Cancelled."""


@dataclass(frozen=True)
class Backoff:
    """Waits between attempts: ``first_s``, growing by ``factor`` up to ``max_s``, each with jitter (half of
    it fixed, half random) so that clients failed together do not retry together."""

    first_s: float = 0.1
    factor: float = 2.0
    max_s: float = 4.0

    def wait(self, retry: int, rng: random.Random) -> float:
        """The wait before retry number ``retry`` (0 for the first)."""
        ceiling = min(self.max_s, self.first_s * self.factor**retry)
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


DEFAULT_BACKOFF = Backoff()
_rng = random.Random()


async def retrying(
    request: Callable[[], Awaitable[T]],
    what: str,
    deadline: float,
    backoff: Backoff = DEFAULT_BACKOFF,
) -> T:
    """The result of ``request()`` (a new awaitable each call), retried after transient failures until
    ``deadline`` (a ``time.monotonic()`` time). ``what`` names the request in log lines and errors, e.g.
    ``GET https://host/image.tif bytes 0-65535``; URLs in it are redacted here. Raises the final failure
    unchanged, ObjectChangedError (the object's stale error: its chunks are EIO from then on),
    RemoteUnavailable, RemoteDeadline or GivenUp."""
    what = redact_text(what)
    token = cancellation.current()
    attempts = 0
    while True:
        attempts += 1
        try:
            return await _attempt(request, deadline, token)
        except GivenUp:
            raise
        except Exception as error:
            verdict = classify(error)
            if verdict is Verdict.CHANGED:
                if isinstance(error, ObjectChangedError):  # the access's own, saying what changed
                    raise
                raise ObjectChangedError(
                    f"{what}: the object changed since it was opened ({_brief(error)})",
                    f"changed ({_brief(error)})",
                    PRECONDITION_FAILED,
                ) from None
            if verdict is Verdict.FINAL:
                raise
            left = deadline - time.monotonic()
            wait = backoff.wait(attempts - 1, _rng)
            if left <= wait:
                plural = "s" if attempts > 1 else ""
                if left <= 0 or _is_timeout(error):
                    raise RemoteDeadline(
                        f"{what}: no answer within the time limit ({attempts} attempt{plural}; "
                        f"last: {_brief(error)})"
                    ) from None
                raise RemoteUnavailable(
                    f"{what}: failed {attempts} time{plural} within the time limit (last: {_brief(error)})"
                ) from None
            log.warning("%s failed (%s); retry %d in %.2f s", what, _brief(error), attempts, wait)
            await _sleep(wait, token)


async def _attempt(request: Callable[[], Awaitable[T]], deadline: float, token: Any) -> T:
    """One attempt, cut off at the deadline, and as soon as the request is given up."""
    task = asyncio.ensure_future(request())
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the deadline passed during the request")
            poll = left if token is None else min(left, CANCEL_POLL_S)
            done, _ = await asyncio.wait({task}, timeout=poll)
            if done:
                return task.result()
            if token is not None and token.cancelled:
                raise GivenUp("the request was given up")
    finally:
        if not task.done():
            task.cancel()


async def _sleep(seconds: float, token: Any) -> None:
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        if token is not None and token.cancelled:
            raise GivenUp("the request was given up")
        await asyncio.sleep(min(left, CANCEL_POLL_S))
    if token is not None and token.cancelled:
        raise GivenUp("the request was given up")


# --- classification ---------------------------------------------------------------------------------------


def _chain(error: BaseException) -> list[BaseException]:
    """``error`` and its causes (explicit first, then implicit), without loops."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain and len(chain) < 8:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def status_of(error: BaseException) -> int | None:
    """The HTTP status of a failed request, where ``error`` or one of its causes holds one."""
    for link in _chain(error):
        response = getattr(link, "response", None)  # botocore's ClientError
        if isinstance(response, dict):
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if isinstance(status, int):
                return status
        status = getattr(link, "status", None)  # aiohttp's ClientResponseError, or the source's own error
        if isinstance(status, int) and 100 <= status <= 599:
            return status
    return None


@functools.cache
def _transient_types() -> tuple[type[BaseException], ...]:
    """Exceptions without a status that a new attempt may not meet (a connection, a body, a timeout)."""
    types: list[type[BaseException]] = [ConnectionError, TimeoutError, http.client.IncompleteRead]
    try:
        import aiohttp

        types += [aiohttp.ClientConnectionError, aiohttp.ClientPayloadError]
    except ImportError:  # pragma: no cover  (a dependency of zarrfs)
        pass
    try:
        import botocore.exceptions as boto

        # HTTPClientError: ConnectionClosedError, Read/ConnectTimeoutError, ResponseStreamingError.
        types += [boto.HTTPClientError, boto.ConnectionError, boto.IncompleteReadError]
    except ImportError:  # only with s3fs
        pass
    return tuple(types)


def classify(error: BaseException) -> Verdict:
    """Whether ``error`` of one request is worth another attempt (see the module docstring)."""
    status = status_of(error)
    if status == PRECONDITION_FAILED:
        return Verdict.CHANGED
    if status is not None:
        return Verdict.TRANSIENT if status in TRANSIENT_STATUSES else Verdict.FINAL
    if isinstance(error, FileNotFoundError | PermissionError):
        return Verdict.FINAL
    if any(isinstance(link, _transient_types()) for link in _chain(error)):
        return Verdict.TRANSIENT
    return Verdict.FINAL


def _is_timeout(error: BaseException) -> bool:
    """Whether a failure was a timeout (botocore's ReadTimeoutError and ConnectTimeoutError are no
    TimeoutError: their names tell)."""
    return any(isinstance(link, TimeoutError) or "Timeout" in type(link).__name__ for link in _chain(error))


def _brief(error: BaseException) -> str:
    """The failure in a few words for a log line: its status or type, and its message, redacted."""
    status = status_of(error)
    name = f"HTTP {status}" if status is not None else type(error).__name__
    message = one_line(error) if str(error).strip() else ""
    if status is not None or not message or message == name:
        return name
    return f"{name}: {redact_text(message)}"
