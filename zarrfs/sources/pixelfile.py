"""Positional reads from the image files, safe for any number of threads at once: ``SourceFile`` is what
readers use, ``PixelFile`` a local file (a remote object is zarrfs.sources.remote.file.RemoteFile)."""

from __future__ import annotations

import os
from collections.abc import Hashable, Sequence
from typing import BinaryIO, Protocol

import numpy as np

from zarrfs.errors import SourceError

# preadv refuses more buffers than this in one call (EINVAL).
_IOV_MAX = os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 1024


class SourceFile(Protocol):
    """A source's bytes for positional reads from any number of threads; ``path`` names it in messages,
    ``size`` is its size as opened."""

    path: str
    size: int

    @property
    def cache_key(self) -> Hashable:
        """Tells this open file from every other one open at the same time (for caches keyed by offset)."""
        ...

    def read(self, length: int, offset: int) -> bytes: ...

    def pread(self, length: int, offset: int) -> bytes:
        """Up to ``length`` bytes from ``offset``: fewer at the end, as ``os.pread`` gives."""
        ...

    def read_into(self, buffers: Sequence[memoryview], offset: int) -> None: ...

    def read_rows_into(self, rows: np.ndarray, offset: int, row_stride: int) -> None: ...

    def read_window(self, offset: int, row_stride: int, rows: int, length: int) -> np.ndarray: ...

    def prefetch(self, ranges: Sequence[tuple[int, int]]) -> None:
        """(start, stop) byte ranges about to be read one by one: a file that can fetch them together does."""
        ...

    def stream(self) -> BinaryIO:
        """A new file object over the same bytes, for parsers that seek and read (tifffile, h5py)."""
        ...

    def close(self) -> None: ...


class RowWindows:
    """``read_window`` for a SourceFile that has ``read_rows_into``."""

    def read_rows_into(self, rows: np.ndarray, offset: int, row_stride: int) -> None:
        raise NotImplementedError

    def read_window(self, offset: int, row_stride: int, rows: int, length: int) -> np.ndarray:
        """``length`` bytes from each of ``rows`` rows ``row_stride`` bytes apart, as uint8 (rows, length)."""
        window = np.empty((rows, length), np.uint8)
        self.read_rows_into(window, offset, row_stride)
        return window


class PixelFile(RowWindows):
    """A local file opened read-only for positional reads (``os.pread`` needs no lock shared between
    threads)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        # The size as opened, to check byte counts against before reading (a source changed since is
        # refused by the source check, not served).
        self.size = os.fstat(self.fd).st_size

    def pread(self, length: int, offset: int) -> bytes:
        return os.pread(self.fd, length, offset)

    def read(self, length: int, offset: int) -> bytes:
        data = os.pread(self.fd, length, offset)
        if len(data) == length:
            return data
        # A short read (a huge request, a signal, the end of the file): read_into takes it from there.
        buffer = bytearray(length)
        self.read_into([memoryview(buffer)], offset)
        return bytes(buffer)

    def read_into(self, buffers: Sequence[memoryview], offset: int) -> None:
        """Fill ``buffers`` (flat byte views), in order, from consecutive bytes of the file from ``offset``
        on: the kernel copies straight into them, with no intermediate ``bytes``."""
        pending = list(buffers)
        first = 0  # pending[first:] still wants bytes
        position = offset
        end = offset + sum(buffer.nbytes for buffer in pending)
        while first < len(pending):
            received = os.preadv(self.fd, pending[first : first + _IOV_MAX], position)
            if received == 0:
                raise self._truncated(offset, end)
            position += received
            # Skip what is full; a short read (a huge request, a signal) leaves one buffer partly filled.
            while first < len(pending) and received >= pending[first].nbytes:
                received -= pending[first].nbytes
                first += 1
            if received:
                pending[first] = pending[first][received:]

    def read_rows_into(self, rows: np.ndarray, offset: int, row_stride: int) -> None:
        """Fill the C-contiguous uint8 array ``rows`` (rows, length) with ``length`` bytes from each of its
        rows ``row_stride`` bytes apart in the file from ``offset`` on."""
        count, length = rows.shape
        # Refuses a non-contiguous array (reshape would silently copy).
        flat = memoryview(rows.data).cast("B")
        if row_stride == length or count == 1:  # one run of bytes
            self.read_into([flat], offset)
            return
        views = [flat[row * length : (row + 1) * length] for row in range(count)]
        if row_stride <= 2 * length:
            # One read, its gaps between the rows dropped into a scratch buffer: wasting at most as many bytes
            # as it keeps is cheaper than one system call per row.
            gap = memoryview(bytearray(row_stride - length))
            scattered = [part for view in views for part in (view, gap)]
            self.read_into(scattered[:-1], offset)
        else:  # a narrow window of wide rows: read only the window, row by row
            for row, view in enumerate(views):
                self.read_into([view], offset + row * row_stride)

    @property
    def cache_key(self) -> Hashable:
        return self.fd

    def prefetch(self, ranges: Sequence[tuple[int, int]]) -> None:
        """Nothing: a local read costs no round trip worth saving."""

    def stream(self) -> BinaryIO:
        return open(self.path, "rb")

    def _truncated(self, start: int, stop: int) -> SourceError:
        """The error for bytes ``start`` to ``stop`` (exclusive), which the file does not all hold. It gives
        the file's size as the system says: where reading stopped is not the end when ``start`` is past it."""
        size = os.fstat(self.fd).st_size
        return SourceError(
            f"file is truncated: {stop - start} bytes from byte {start} on are needed, but the file has "
            f"{size} bytes: {self.path}"
        )

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
