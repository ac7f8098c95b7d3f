"""One remote object as opened: its identity, pinned range reads, and the check that it is still the same.

A change shows in two ways: a pinned read is refused (or answered by another object), or the identity
check, which asks for the identity again at most every ``HEAD_INTERVAL_S`` seconds (never once per read).
Either way the object stays marked as changed: no later read returns its bytes.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
import weakref
from collections.abc import Sequence
from typing import Any

from fsspec.spec import AbstractFileSystem

from zarrfs.errors import SourceError
from zarrfs.sources.remote.access import ObjectAccess, access_for, describe_failure
from zarrfs.sources.remote.filesystems import remote_filesystem
from zarrfs.sources.remote.identity import ObjectChangedError, ObjectIdentity, RemoteError
from zarrfs.sources.remote.options import RemoteOptions
from zarrfs.sources.remote.retry import RemoteUnavailable
from zarrfs.sources.remote.transfer import attempt, call, loop_of, run
from zarrfs.sources.remote.urls import redact, scrub

log = logging.getLogger(__name__)

# The objects open now, by the name they are shown as (which sources give as their files).
_OPEN: weakref.WeakValueDictionary[str, RemoteObject] = weakref.WeakValueDictionary()

# How stale the identity check may be: a change that no pinned read runs into shows within this long.
HEAD_INTERVAL_S = 5.0
# How long the identity check retries: it runs within a read, which a failing check must not hold up to its
# time limit (a failed check is no change).
CHECK_WITHIN_S = 2.0


class RemoteObject:
    """An object at a URL, pinned to its identity at open. Thread-safe."""

    def __init__(
        self, access: ObjectAccess, identity: ObjectIdentity, secrets: tuple[str, ...], key: str
    ) -> None:
        self.access = access
        self.identity = identity
        self.name = access.name
        self.key = key  # names the object and its identity, for caches beyond this process; holds no secret
        self._secrets = secrets
        self._change: str | None = None
        self._checked_at = time.monotonic()
        self._lock = threading.Lock()

    @classmethod
    def open(cls, url: str, options: RemoteOptions | None = None) -> RemoteObject:
        """The object at ``url`` as it is now (one HEAD); a one-line RemoteError (a SourceError) when it is
        missing or forbidden, with the HTTP status where there is one."""
        remote, _ = cls._opened(url, options or RemoteOptions(), whole=False)
        if remote.identity.size == 0:
            raise SourceError(f"source is empty (0 bytes): {remote.name}")
        return remote

    @classmethod
    def read_whole(cls, url: str, options: RemoteOptions | None = None) -> tuple[RemoteObject, bytes]:
        """The object at ``url`` opened and read whole with one request (a small document), or the same
        RemoteError as ``open``."""
        return cls._opened(url, options or RemoteOptions(), whole=True)

    @classmethod
    def _opened(cls, url: str, options: RemoteOptions, whole: bool) -> tuple[RemoteObject, bytes]:
        name = redact(url)
        fs, path = remote_filesystem(url, options)
        access = access_for(fs, path, name)
        secrets = (*options.secrets(), *url_secrets(url))
        try:
            if whole:
                identity, data = run(access.loop, lambda: attempt(access.get_whole, f"GET {name}"))
            else:
                identity, data = run(access.loop, lambda: attempt(access.head, f"HEAD {name}")), b""
        except RemoteUnavailable as error:  # no answer but failures: which, the retries' message says
            raise RemoteError(f"cannot open {name}: {scrub(str(error), secrets)}") from None
        except RemoteError as error:
            raise RemoteError(scrub(str(error), secrets), error.status) from None
        except Exception as error:
            raise RemoteError(f"cannot open {name} ({scrub(describe_failure(error), secrets)})") from None
        remote = cls.known(access, identity, url, options)
        _OPEN[name] = remote
        return remote, data

    @classmethod
    def known(
        cls, access: ObjectAccess, identity: ObjectIdentity, url: str, options: RemoteOptions
    ) -> RemoteObject:
        """The object at ``url`` pinned to ``identity``, known already (no request)."""
        secrets = (*options.secrets(), *url_secrets(url))
        digest = hashlib.sha256(f"{url}\0{identity.etag}\0{identity.version}\0{identity.size}".encode())
        return cls(access, identity, secrets, digest.hexdigest())

    def __repr__(self) -> str:
        return f"RemoteObject({self.name!r}, {self.identity})"

    @property
    def mtime_ns(self) -> int:
        return self.identity.mtime_ns

    def fetch(self, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        """The bytes of each (start, stop) range, requested concurrently; RemoteError for any that fails
        (ObjectChangedError when the object changed: from then on every fetch fails)."""
        self.check_seen()
        access, pinned = self.access, self.identity

        async def one(start: int, stop: int) -> bytes:
            return await attempt(lambda: access.get(start, stop, pinned), f"GET {self.name} [{start}:{stop}]")

        async def every() -> list[bytes]:
            return list(await asyncio.gather(*(one(start, stop) for start, stop in ranges)))

        try:
            return run(access.loop, every)
        except ObjectChangedError as error:
            self._changed(error.phrase)
            raise RemoteError(scrub(str(error), self._secrets)) from None
        except RemoteError as error:  # its class kept: a front end answers RemoteDeadline with 504
            error.args = (scrub(str(error), self._secrets),)
            raise error from None
        except Exception as error:
            raise RemoteError(
                f"cannot read {self.name} ({scrub(describe_failure(error), self._secrets)})"
            ) from None

    def _changed(self, change: str) -> None:
        with self._lock:
            if self._change is None:
                self._change = scrub(change, self._secrets)
                log.error("%s %s since it was opened; serving no more of it", self.name, self._change)

    def check_seen(self) -> None:
        if self._change is not None:
            raise ObjectChangedError(f"{self.name} {self._change} since it was opened", self._change)

    def change(self) -> str | None:
        """What changed since open, in words (without the name), or None: a change a read ran into, else
        (at most every HEAD_INTERVAL_S) what the identity asked for again says. A failed check is no
        change."""
        if self._change is None and time.monotonic() - self._checked_at >= HEAD_INTERVAL_S:
            self._checked_at = time.monotonic()
            try:
                now = run(
                    self.access.loop,
                    lambda: attempt(self.access.head, f"HEAD {self.name}", within_s=CHECK_WITHIN_S),
                )
            except RemoteError as error:
                if error.status in (404, 410):
                    self._changed("was deleted")
                else:
                    log.warning("cannot check %s: %s", self.name, scrub(str(error), self._secrets))
            except Exception as error:
                log.warning("cannot check %s: %s", self.name, scrub(describe_failure(error), self._secrets))
            else:
                change = self.identity.change_to(now)
                if change is not None:
                    self._changed(change)
        return self._change


def _call(fs: AbstractFileSystem, method: str, *args: Any) -> Any:
    """``fs.<method>(*args)`` through ``attempt``."""
    return run(loop_of(fs), lambda: attempt(lambda: call(fs, method, *args), f"{method} {args[0]}"))


def fetch_whole(fs: AbstractFileSystem, path: str, name: str, options: RemoteOptions) -> bytes | None:
    """The whole object at ``path`` (shown as ``name``) with one request, unpinned; None where there is
    none. For objects read once and whole (a Zarr chunk), where a HEAD first would double the requests."""
    try:
        data: bytes = _call(fs, "cat_file", path)
    except FileNotFoundError:
        return None
    except Exception as error:
        secrets = (*options.secrets(), *url_secrets(path))
        raise RemoteError(f"cannot read {name} ({scrub(describe_failure(error), secrets)})") from None
    return data


def list_directories(fs: AbstractFileSystem, path: str, name: str, options: RemoteOptions) -> list[str]:
    """The names of the directories (prefixes) under ``path``, sorted; empty where it cannot be listed (an
    HTTP server without directory listings)."""
    try:
        entries = _call(fs, "ls", path, True)
    except Exception as error:
        secrets = (*options.secrets(), *url_secrets(path))
        log.debug("cannot list %s: %s", name, scrub(describe_failure(error), secrets))
        return []
    names = (
        str(entry["name"]).rstrip("/").rsplit("/", 1)[-1]
        for entry in entries
        if entry.get("type") == "directory"
    )
    return sorted(names)


def url_secrets(url: str) -> tuple[str, ...]:
    """The user info and query string of ``url``: never shown, even inside a library's message."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    return tuple(part for part in (userinfo, parts.query, parts.password or "") if part)


def opened(name: str) -> RemoteObject | None:
    """The object open under ``name`` (its URL as shown), if any."""
    return _OPEN.get(name)
