"""The virtual file tree: paths -> directories, metadata documents and chunk files.

Front ends (FUSE, the zarr store) only ask this tree; it knows nothing about them.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from dataclasses import dataclass

from zarrfs.core.array import ChunkIndex, VirtualArray

DIRECTORY = -1


@dataclass(frozen=True)
class Entry:
    """A path's kind and size: ``size`` is DIRECTORY for directories, else the exact file size."""

    size: int

    @property
    def is_dir(self) -> bool:
        return self.size == DIRECTORY


@dataclass(frozen=True)
class _ChunkPath:
    array: VirtualArray
    index: ChunkIndex  # shorter than the array's rank for the directories above chunk files


def _split(path: str) -> list[str]:
    normalized = posixpath.normpath("/" + path.strip("/"))
    return [] if normalized == "/" else normalized.strip("/").split("/")


class VirtualTree:
    """A read-only tree of small metadata documents and arrays whose chunk files sit under their directory
    with "/"-separated keys (``<array>/<i0>/<i1>/...``)."""

    def __init__(self, documents: dict[str, bytes], arrays: dict[str, VirtualArray]) -> None:
        self._documents = {"/".join(_split(key)): value for key, value in documents.items()}
        self._arrays = {"/".join(_split(key)): array for key, array in arrays.items()}
        # Directories holding documents or arrays, with their named children (small: metadata only).
        self._directories: dict[str, set[str]] = {"": set()}
        for path in [*self._documents, *self._arrays]:
            parts = path.split("/")
            for depth in range(len(parts)):
                self._directories.setdefault("/".join(parts[:depth]), set()).add(parts[depth])
        for path in self._arrays:
            self._directories.setdefault(path, set())

    @property
    def arrays(self) -> dict[str, VirtualArray]:
        return self._arrays

    def _chunk_path(self, parts: list[str]) -> _ChunkPath | None:
        """Resolve ``parts`` to a chunk file or chunk directory of one array, or None."""
        for depth in range(len(parts) - 1, 0, -1):
            array = self._arrays.get("/".join(parts[:depth]))
            if array is None:
                continue
            keys = parts[depth:]
            if len(keys) > len(array.grid) or not all(key.isdigit() and key == str(int(key)) for key in keys):
                return None
            index = tuple(int(key) for key in keys)
            if any(i >= n for i, n in zip(index, array.grid, strict=False)):
                return None
            return _ChunkPath(array, index)
        return None

    def stat(self, path: str) -> Entry | None:
        """The entry at ``path``, or None when nothing is there."""
        parts = _split(path)
        key = "/".join(parts)
        if key in self._directories:
            return Entry(DIRECTORY)
        document = self._documents.get(key)
        if document is not None:
            return Entry(len(document))
        chunk = self._chunk_path(parts)
        if chunk is None:
            return None
        if len(chunk.index) < len(chunk.array.grid):
            return Entry(DIRECTORY)
        return Entry(chunk.array.chunk_nbytes(chunk.index))

    def listdir(self, path: str, start: int = 0) -> Iterator[str]:
        """Names in the directory at ``path`` from the ``start``-th on, produced lazily: a chunk directory can
        hold millions, and a reader that lists it page by page must not cost a full listing per page.

        Raises NotADirectoryError or FileNotFoundError."""
        parts = _split(path)
        key = "/".join(parts)
        names = self._directories.get(key)
        array = self._arrays.get(key)
        if array is not None:
            named = sorted(names or ())
            yield from named[start:]
            yield from (str(i) for i in range(max(0, start - len(named)), array.grid[0]))
            return
        if names is not None:
            yield from sorted(names)[start:]
            return
        chunk = self._chunk_path(parts)
        if chunk is None:
            if key in self._documents:
                raise NotADirectoryError(path)
            raise FileNotFoundError(path)
        depth = len(chunk.index)
        if depth == len(chunk.array.grid):
            raise NotADirectoryError(path)
        yield from (str(i) for i in range(start, chunk.array.grid[depth]))

    def read_file(self, path: str) -> bytes:
        """The whole content of the file at ``path``. Raises FileNotFoundError, IsADirectoryError or
        ChunkReadError (an OSError) when the source cannot be read for a chunk."""
        parts = _split(path)
        key = "/".join(parts)
        document = self._documents.get(key)
        if document is not None:
            return document
        chunk = self._chunk_path(parts)
        if chunk is None or key in self._directories:
            if key in self._directories:
                raise IsADirectoryError(path)
            raise FileNotFoundError(path)
        if len(chunk.index) < len(chunk.array.grid):
            raise IsADirectoryError(path)
        return chunk.array.chunk_bytes(chunk.index)

    def read(self, path: str, offset: int, size: int) -> bytes:
        return self.read_file(path)[offset : offset + size]
