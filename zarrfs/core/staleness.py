"""Detecting a source that changed under a live mount, so that no byte of a changed file is ever served.

Every file a source reads is watched by its identity: device, inode, size, modification time and status
change time (ctime). A write updates both times before its bytes can be read back (the kernel stamps the
inode first, to the tick of its clock), and utime() can put the mtime back but never the ctime, so a rewrite
that restores the old mtime still shows.

Each read of source data is followed by a check of every watched file: bytes read before a check that finds
all of them unchanged are the mounted files' bytes, and the result of a read followed by a failed check is
dropped before anyone (the cache included) sees it. A stat before the read would add nothing: the check
after it compares with the identity at open, so it also sees a change made before the read.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

import numpy as np

from zarrfs.sources import ImageSource, NativeBlocks
from zarrfs.sources.identity import FileIdentity, Watched, change_of, identity_of

log = logging.getLogger(__name__)
T = TypeVar("T")

# Reads served from the cache re-check the source when its last check is older than this: chunks made before a
# change are the old file's bytes, but once a change is this old every open file gets EIO, not just new ones.
RECHECK_S = 0.1


class SourceChangedError(OSError):
    """A source file was replaced, truncated, modified or deleted after it was opened."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.EIO, message)


class SourceWatch:
    """Compares the identity of every file a source reads with the one it had when opened.

    Once a change is seen the watch stays tripped: every later chunk access fails, so a client never gets
    chunks of the new file mixed with chunks of the old one (the source must be mounted again).
    """

    def __init__(self, opened: dict[str, FileIdentity | Watched]) -> None:
        self.opened = opened
        self._change: str | None = None
        self._checked_at = time.monotonic()
        self._lock = threading.Lock()

    @classmethod
    def of(cls, paths: Iterable[str], known: dict[str, FileIdentity] | None = None) -> SourceWatch:
        """A watch on ``paths`` as they are now, or as ``known`` says they were (taken earlier)."""
        known = known or {}
        return cls({path: known.get(path) or identity_of(path) for path in paths})

    def _first_change(self) -> str | None:
        for path, opened in self.opened.items():
            change = change_of(path, opened)
            if change is not None:
                return f"source {path} {change} since it was mounted"
        return None

    def check(self) -> None:
        """Raise SourceChangedError (an EIO) if a source file changed since it was opened: one stat a file (a
        remote object answers from what its reads saw, asking the server again only every few seconds)."""
        if self._change is None:
            change = self._first_change()
            if change is None:
                self._checked_at = time.monotonic()
                return
            with self._lock:
                if self._change is None:
                    self._change = change
                    log.error("%s; serving no more chunks", change)
        self.check_seen()

    def check_seen(self) -> None:
        """Raise SourceChangedError if a change has been seen already: no stat."""
        if self._change is not None:
            raise SourceChangedError(f"{self._change}: remount it")

    def recheck_due(self) -> bool:
        """True when a change has been seen, or the last check that found none is RECHECK_S old."""
        return self._change is not None or time.monotonic() - self._checked_at >= RECHECK_S


class WatchedSource(ImageSource):
    """``source`` with each read of its files followed by ``watch.check()``: a read returns only when every
    file was, after it, as it was when opened; otherwise SourceChangedError, its result dropped."""

    def __init__(self, source: ImageSource, watch: SourceWatch) -> None:
        self.source = source
        self.watch = watch
        self.path = source.path
        self.info = source.info

    def files(self) -> tuple[str, ...]:
        return self.source.files()

    def watched_files(self) -> Sequence[str]:
        return self.source.watched_files()

    def problems(self) -> list[str]:
        return self.source.problems()

    def _checked(self, read: Callable[[], T]) -> T:
        self.watch.check_seen()  # no read at all once a change is known
        try:
            return read()
        finally:
            # After the read, even a failed one: a read that failed because its file changed says so.
            self.watch.check()

    def read_region(self, level: int, region: tuple[slice, ...]) -> np.ndarray:
        return self._checked(lambda: self.source.read_region(level, region))

    def native_blocks(self, level: int) -> NativeBlocks | None:
        return self.source.native_blocks(level)

    def read_native_block(self, level: int, index: tuple[int, ...]) -> bytes | None:
        return self._checked(lambda: self.source.read_native_block(level, index))

    def close(self) -> None:
        self.source.close()
