"""The files of a sequence, opened when their planes are first read and kept in a bounded LRU.

Each file must be what it was at mount (device, inode, size, times) before it is opened and after every
read of it, and have the first file's shape, dtype and levels; a file that fails either is remembered as bad,
logged once, and every later read of it fails at once (an EIO for its chunks only).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import NoReturn, TypeVar

from zarrfs.errors import SourceError
from zarrfs.sources.base import ImageSource
from zarrfs.sources.identity import FileIdentity, change_since

log = logging.getLogger(__name__)
T = TypeVar("T")


def _change(path: str, mounted: FileIdentity) -> str | None:
    change = change_since(path, mounted)
    return None if change is None else f"{change} since it was mounted"


class _Entry:
    """One file's open source; ``users`` reads hold it, so eviction closes it only once they are done."""

    __slots__ = ("evicted", "opening", "source", "users")

    def __init__(self) -> None:
        self.opening = threading.Lock()
        self.source: ImageSource | None = None
        self.users = 0
        self.evicted = False


class Members:
    """The files of a sequence by position. ``open_file(path)`` opens one and returns its source or raises
    SourceError; ``mismatch(source)`` says how it differs from the first file (None if it does not). At most
    ``capacity`` files stay open (more only while that many reads run at once)."""

    def __init__(
        self,
        paths: Sequence[str],
        identities: Sequence[FileIdentity],
        open_file: Callable[[str], ImageSource],
        mismatch: Callable[[ImageSource], str | None],
        capacity: int,
    ) -> None:
        self.paths = paths
        self._identities = identities
        self._open_file = open_file
        self._mismatch = mismatch
        self.capacity = capacity
        self._open: OrderedDict[int, _Entry] = OrderedDict()  # least recently used first
        self._bad: dict[int, str] = {}  # position -> why its reads fail
        self._lock = threading.Lock()
        self._closed = False

    def read(self, position: int, read: Callable[[ImageSource], T]) -> T:
        """``read(source)`` on the file at ``position``, checked against the file as mounted after it (the
        result of a read of a changed file is never returned)."""
        with self._lease(position) as source:
            result = read(source)
        change = _change(self.paths[position], self._identities[position])
        if change is not None:
            self._fail(position, change)
        return result

    def check_open(self) -> None:
        if self._closed:
            raise SourceError("source is closed: a sequence of " + str(len(self.paths)) + " files")

    def open_count(self) -> int:
        with self._lock:
            return sum(entry.source is not None for entry in self._open.values())

    @contextmanager
    def _lease(self, position: int) -> Iterator[ImageSource]:
        entry = self._take(position)
        try:
            yield self._opened(position, entry)
        finally:
            self._give_back(entry)

    def _take(self, position: int) -> _Entry:
        with self._lock:
            if self._closed:
                raise SourceError(f"source is closed: {self.paths[position]}")
            if position in self._bad:
                raise SourceError(self._bad[position])
            entry = self._open.get(position)
            if entry is None:
                entry = self._open[position] = _Entry()
            self._open.move_to_end(position)
            entry.users += 1
            evicted = self._evict()
        for source in evicted:
            source.close()
        return entry

    def _evict(self) -> list[ImageSource]:
        """Drop the least recently used files beyond capacity that no read holds (called under the lock);
        returns their sources to close once the lock is let go."""
        to_close = []
        for position, entry in list(self._open.items()):
            if len(self._open) <= self.capacity:
                break
            if entry.users == 0:
                del self._open[position]
                entry.evicted = True
                if entry.source is not None:
                    to_close.append(entry.source)
                    entry.source = None
        return to_close

    def _give_back(self, entry: _Entry) -> None:
        with self._lock:
            entry.users -= 1
            evicted = self._evict()
            if entry.evicted and entry.users == 0 and entry.source is not None:
                evicted.append(entry.source)  # dropped while this read held it
                entry.source = None
        for source in evicted:
            source.close()

    def _opened(self, position: int, entry: _Entry) -> ImageSource:
        with entry.opening:  # one thread opens; the others wait for it
            if entry.source is None:
                path = self.paths[position]
                change = _change(path, self._identities[position])
                if change is not None:
                    self._fail(position, change)
                try:
                    source = self._open_file(path)
                except SourceError as error:
                    self._fail(position, f"cannot be opened: {error}")
                mismatch = self._mismatch(source)
                if mismatch is not None:
                    source.close()
                    self._fail(position, mismatch)
                entry.source = source
            return entry.source

    def _fail(self, position: int, reason: str) -> NoReturn:
        """Remember the file as bad, log it once, close it once no read holds it, and raise."""
        message = f"sequence file {self.paths[position]} {reason}: its planes are not served"
        to_close = None
        with self._lock:
            first = position not in self._bad
            message = self._bad.setdefault(position, message)
            entry = self._open.pop(position, None)
            if entry is not None:
                entry.evicted = True
                if entry.users == 0:
                    to_close, entry.source = entry.source, None
        if first:
            log.error("%s", message)
        if to_close is not None:
            to_close.close()
        raise SourceError(message)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            entries = list(self._open.values())
            self._open.clear()
        for entry in entries:
            if entry.source is not None:
                entry.source.close()
                entry.source = None
