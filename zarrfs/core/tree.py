"""The virtual file tree: paths -> directories, metadata documents and chunk (or shard) files.

Front ends (FUSE, the zarr store) only ask this tree; it knows nothing about them. An array directory can
hold the chunk files of several Zarr formats side by side: v2 keys are ``<dir>/<i>/<j>/...``, v3 keys
``<dir>/c/<i>/<j>/...``; a key prefix tells them apart.
"""

from __future__ import annotations

import functools
import posixpath
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol

from zarrfs.core.levels import ChunkIndex

DIRECTORY = -1
RESOLVED_PATHS = 4096  # chunk paths whose resolution is remembered (a few hundred bytes each)
# A source check (a stat of the source file) running this long means its filesystem is not answering.
STUCK_CHECK_S = 1.0

# File contents: chunk files are read-only views of cached chunks (no copy until the reader's own buffer).
FileBytes = bytes | memoryview


class WouldBlock(Exception):
    """Raised by a non-blocking call (``blocking=False``) that could only answer by making a chunk or reading
    the source: the caller asks again where waiting is allowed."""


class ChunkFiles(Protocol):
    """Files on a grid (chunks or shards) whose exact sizes are known before they are read.

    With ``blocking=False``, ``file_size`` and ``read`` answer only from what is at hand (static sizes, the
    cache) and raise WouldBlock otherwise."""

    grid: tuple[int, ...]

    @property
    def computed_depth(self) -> int:
        """0 for files of a level the source stores, n for those of a level n reductions away from one."""

    def contains(self, index: ChunkIndex) -> bool: ...

    def file_size(self, index: ChunkIndex, blocking: bool = True) -> int: ...

    def read(self, index: ChunkIndex, offset: int, size: int, blocking: bool = True) -> FileBytes: ...


class ServedTree(Protocol):
    """The calling convention front ends serve a tree by: VirtualTree (one image), SeriesTree (the series of
    one source under prefixes, collection.py) and RepositoryTree (a directory of images,
    zarrfs.core.repository) follow it. ``blocking=False`` calls raise WouldBlock
    rather than make a chunk, read the source or scan a directory."""

    def stat(self, path: str, blocking: bool = True) -> Entry | None: ...

    def listdir(self, path: str, start: int = 0, blocking: bool = True) -> Iterator[str]: ...

    def is_document(self, path: str) -> bool: ...

    def computed_depth(self, path: str) -> int: ...

    def read(self, path: str, offset: int, size: int, blocking: bool = True) -> FileBytes: ...

    def read_file(self, path: str, blocking: bool = True) -> FileBytes: ...


@dataclass(frozen=True)
class Entry:
    """A path's kind and size: ``size`` is DIRECTORY for directories, else the exact file size."""

    size: int

    @property
    def is_dir(self) -> bool:
        return self.size == DIRECTORY


@dataclass(frozen=True)
class _ChunkPath:
    files: ChunkFiles
    index: ChunkIndex  # shorter than the grid's rank for the directories above chunk files

    @property
    def is_dir(self) -> bool:
        return len(self.index) < len(self.files.grid)


def split_path(path: str) -> list[str]:
    """A path of the tree as its parts ("" and "/" are the root, [])."""
    normalized = posixpath.normpath("/" + path.strip("/"))
    return [] if normalized == "/" else normalized.strip("/").split("/")


# A chunk index as Zarr writes it: ASCII digits, no sign, no leading zero, and at most 19 of them (no grid
# reaches 10**19). str.isdigit would also take "²" or "٣", which int() refuses or reads, and int() refuses
# strings of thousands of digits.
_INDEX = re.compile(r"0|[1-9][0-9]{0,18}")


def _is_index(key: str) -> bool:
    return _INDEX.fullmatch(key) is not None


class VirtualTree:
    """A read-only tree of small metadata documents and arrays' chunk files.

    ``arrays`` maps an array directory to its chunk file sets by key prefix: "" for v2, "c" for v3.
    ``guard`` runs whenever a chunk file is looked up (``stat``, which every open and whole-file read goes
    through), and raises (an OSError) to refuse it. Reads of an already open file run it only when
    ``recheck_due()`` says so: a check per read request cost up to a fifth of the daemon's time. (Every read
    of the source for a chunk is checked itself, see staleness.py; here the guard refuses chunks made before
    a change.)

    ``stat`` and ``read`` with ``blocking=False`` raise WouldBlock where they would make a chunk or read the
    source; the guard (a stat of the source file, no data read) runs either way, except that a non-blocking
    call raises WouldBlock while an earlier guard call has been hanging for STUCK_CHECK_S.
    """

    def __init__(
        self,
        documents: dict[str, bytes],
        arrays: dict[str, dict[str, ChunkFiles]],
        guard: Callable[[], None] | None = None,
        recheck_due: Callable[[], bool] | None = None,
    ) -> None:
        self._guard = guard or (lambda: None)
        self._recheck_due = recheck_due or (lambda: False)
        self._documents = {"/".join(split_path(key)): value for key, value in documents.items()}
        self._arrays = {"/".join(split_path(key)): files for key, files in arrays.items()}
        # Directories holding documents, arrays or key prefixes, with their named children (metadata only).
        self._directories: dict[str, set[str]] = {"": set()}
        prefixes = [f"{path}/{prefix}" for path, sets in self._arrays.items() for prefix in sets if prefix]
        for path in [*self._documents, *self._arrays, *prefixes]:
            parts = path.split("/")
            for depth in range(len(parts)):
                self._directories.setdefault("/".join(parts[:depth]), set()).add(parts[depth])
        for path in [*self._arrays, *prefixes]:
            self._directories.setdefault(path, set())
        # Directories whose listing continues with the top chunk indices of a file set.
        self._listing_sets: dict[str, ChunkFiles] = {}
        for path, sets in self._arrays.items():
            for prefix, files in sets.items():
                self._listing_sets[f"{path}/{prefix}" if prefix else path] = files
        # Readers ask about one chunk file several times in a row (lookup, open, one read per 128 KiB-1 MiB):
        # resolving its path once saves a third of a cached read's time in the tree.
        self._chunk_path = functools.lru_cache(maxsize=RESOLVED_PATHS)(self._find_chunk_path)
        # Thread -> start time of the source check it runs for a non-blocking call.
        self._checks_under_way: dict[int, float] = {}
        self._checks_lock = threading.Lock()

    def _find_chunk_path(self, key: str) -> _ChunkPath | None:
        """Resolve ``key`` to a chunk file or chunk directory of one array, or None."""
        parts = key.split("/")
        for depth in range(len(parts) - 1, 0, -1):
            sets = self._arrays.get("/".join(parts[:depth]))
            if sets is None:
                continue
            keys = parts[depth:]
            files = sets.get(keys[0]) if keys[0] in sets and keys[0] else None
            if files is not None:
                keys = keys[1:]
            else:
                files = sets.get("")
            if files is None or not keys or len(keys) > len(files.grid) or not all(map(_is_index, keys)):
                return None
            index = tuple(int(key) for key in keys)
            if any(i >= n for i, n in zip(index, files.grid, strict=False)):
                return None
            return _ChunkPath(files, index)
        return None

    def stat(self, path: str, blocking: bool = True) -> Entry | None:
        """The entry at ``path``, or None when nothing is there."""
        parts = split_path(path)
        key = "/".join(parts)
        if key in self._directories:
            return Entry(DIRECTORY)
        document = self._documents.get(key)
        if document is not None:
            return Entry(len(document))
        chunk = self._chunk_path(key)
        if chunk is None:
            return None
        if chunk.is_dir:
            return Entry(DIRECTORY)
        if blocking:
            self._guard()  # before any work for a source that may have changed
            return Entry(chunk.files.file_size(chunk.index))
        # Non-blocking: a size at hand is no work; checking after it spares a second check when this
        # raises WouldBlock and the caller asks again blocking.
        size = chunk.files.file_size(chunk.index, blocking=False)
        self._check_without_waiting()
        return Entry(size)

    @property
    def documents(self) -> Mapping[str, bytes]:
        """Every metadata document by path."""
        return MappingProxyType(self._documents)

    def is_document(self, path: str) -> bool:
        """Whether ``path`` is a metadata document (JSON), not a chunk file or directory."""
        return "/".join(split_path(path)) in self._documents

    def computed_depth(self, path: str) -> int:
        """How far from the source the data at ``path`` lies: 0 for documents, directories and chunk files of
        stored levels, n for chunk files of a level computed by n reductions (PixelLevel.computed_depth)."""
        chunk = self._chunk_path("/".join(split_path(path)))
        return 0 if chunk is None or chunk.is_dir else chunk.files.computed_depth

    def listdir(self, path: str, start: int = 0, blocking: bool = True) -> Iterator[str]:
        """Names in the directory at ``path`` from the ``start``-th on, produced lazily: a chunk directory can
        hold millions, and a reader that lists it page by page must not cost a full listing per page. (Never
        work that could wait: ``blocking`` is for the calling convention.)

        Raises NotADirectoryError or FileNotFoundError."""
        parts = split_path(path)
        key = "/".join(parts)
        names = self._directories.get(key)
        if names is not None:
            named = sorted(names)
            yield from named[start:]
            files = self._listing_sets.get(key)
            if files is not None:
                yield from (str(i) for i in range(max(0, start - len(named)), files.grid[0]))
            return
        chunk = self._chunk_path(key)
        if chunk is None:
            if key in self._documents:
                raise NotADirectoryError(path)
            raise FileNotFoundError(path)
        if not chunk.is_dir:
            raise NotADirectoryError(path)
        yield from (str(i) for i in range(start, chunk.files.grid[len(chunk.index)]))

    def _file(self, path: str) -> bytes | _ChunkPath:
        """The document or chunk file at ``path``. Raises FileNotFoundError or IsADirectoryError."""
        parts = split_path(path)
        key = "/".join(parts)
        document = self._documents.get(key)
        if document is not None:
            return document
        if key in self._directories:
            raise IsADirectoryError(path)
        chunk = self._chunk_path(key)
        if chunk is None:
            raise FileNotFoundError(path)
        if chunk.is_dir:
            raise IsADirectoryError(path)
        return chunk

    def read(self, path: str, offset: int, size: int, blocking: bool = True) -> FileBytes:
        """Bytes ``offset`` to ``offset + size`` of the file at ``path``, read-only. Raises FileNotFoundError,
        IsADirectoryError, ChunkReadError (an OSError) when the source cannot be read for a chunk, or what the
        guard raises once the source changed."""
        file = self._file(path)
        if isinstance(file, bytes):
            return file[offset : offset + size]
        if blocking:
            if self._recheck_due():
                self._guard()
            return file.files.read(file.index, offset, size)
        data = file.files.read(file.index, offset, size, blocking=False)
        if self._recheck_due():  # after, as in ``stat``
            self._check_without_waiting(optional=True)
        return data

    def read_file(self, path: str, blocking: bool = True) -> FileBytes:
        """The whole file at ``path`` (same errors as ``read``). A chunk file is looked up as by ``stat``,
        guard included: a reader of whole files (the zarr store) never opens them."""
        file = self._file(path)
        if isinstance(file, bytes):
            return file
        files, index = file.files, file.index
        if blocking:
            self._guard()
            return files.read(index, 0, files.file_size(index))
        data = files.read(index, 0, files.file_size(index, blocking=False), blocking=False)
        self._check_without_waiting()  # after, as in ``stat``
        return data

    def _check_without_waiting(self, optional: bool = False) -> None:
        """Run the guard for a non-blocking call, unless an earlier check has hung (a source on a network
        filesystem that stopped answering): then raise WouldBlock, so that the caller asks again where a
        time limit applies, instead of one more thread waiting here without one.

        An ``optional`` check (the re-check of a read whose bytes are at hand: a chunk made, and checked,
        before any change was seen) is skipped instead: reads of open files keep being answered from the
        cache while the source cannot be checked."""
        thread = threading.get_ident()
        with self._checks_lock:
            now = time.monotonic()
            if now - min(self._checks_under_way.values(), default=now) > STUCK_CHECK_S:
                if optional:
                    return
                raise WouldBlock
            self._checks_under_way[thread] = now
        try:
            self._guard()
        finally:
            with self._checks_lock:
                del self._checks_under_way[thread]
