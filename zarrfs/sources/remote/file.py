"""A remote object as a SourceFile: positional reads through its block cache, and file objects for
parsers (tifffile, h5py) whose small sequential reads come out of read-ahead blocks."""

from __future__ import annotations

import io
from collections.abc import Hashable, Sequence
from typing import BinaryIO, cast

import numpy as np

from zarrfs.errors import SourceError
from zarrfs.sources.pixelfile import RowWindows
from zarrfs.sources.remote.blocks import BlockCache
from zarrfs.sources.remote.objects import RemoteObject

# What a parser's read that misses fetches beyond the block it needs: headers and IFDs at the start of a file
# (a COG, an HDF5 superblock and its object headers) come in one request.
PARSER_READ_AHEAD_BYTES = 2 * 2**20


class RemoteFile(RowWindows):
    def __init__(self, remote: RemoteObject, blocks: BlockCache) -> None:
        self.remote = remote
        self.blocks = blocks
        self.path = remote.name
        self.size = remote.identity.size
        self._closed = False

    @property
    def cache_key(self) -> Hashable:
        return id(self)

    @property
    def parser_ahead(self) -> int:
        """Read-ahead in blocks for parsers, within a quarter of the block cache (the rest is for pixels)."""
        share = min(PARSER_READ_AHEAD_BYTES, self.blocks.capacity_bytes // 4)
        return max(0, share // self.blocks.block_bytes - 1)

    def _check(self, start: int, stop: int) -> None:
        if self._closed:
            raise SourceError(f"source is closed: {self.path}")
        if stop > self.size:
            raise SourceError(
                f"file is truncated: {stop - start} bytes from byte {start} on are needed, but the object "
                f"has "
                f"{self.size} bytes: {self.path}"
            )

    def read_ranges_into(self, pieces: Sequence[tuple[int, memoryview]]) -> None:
        """Fill each (offset, buffer) from the object, every block they need fetched at once."""
        for offset, view in pieces:
            self._check(offset, offset + view.nbytes)
        ranges = [(offset, offset + view.nbytes) for offset, view in pieces]
        for (_, view), data in zip(pieces, self.blocks.read_ranges(ranges), strict=True):
            view[:] = data

    def prefetch(self, ranges: Sequence[tuple[int, int]]) -> None:
        self.blocks.prefetch(ranges)

    def pread(self, length: int, offset: int) -> bytes:
        stop = min(offset + length, self.size)
        return self.read(stop - offset, offset) if stop > offset else b""

    def read(self, length: int, offset: int) -> bytes:
        self._check(offset, offset + length)
        (data,) = self.blocks.read_ranges([(offset, offset + length)])
        return bytes(data)

    def read_into(self, buffers: Sequence[memoryview], offset: int) -> None:
        pieces = []
        for buffer in buffers:
            pieces.append((offset, buffer))
            offset += buffer.nbytes
        self.read_ranges_into(pieces)

    def read_rows_into(self, rows: np.ndarray, offset: int, row_stride: int) -> None:
        count, length = rows.shape
        flat = memoryview(rows.data).cast("B")
        self.read_ranges_into(
            [(offset + row * row_stride, flat[row * length : (row + 1) * length]) for row in range(count)]
        )

    def stream(self) -> BinaryIO:
        return cast(BinaryIO, RemoteStream(self))

    def close(self) -> None:
        self._closed = True


class RemoteStream(io.RawIOBase):
    """A read-only, seekable file object over a RemoteFile (its own position; not shared between threads)."""

    def __init__(self, file: RemoteFile) -> None:
        super().__init__()
        self.file = file
        self.name = file.path
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.file.size}[whence]
        if base + offset < 0:
            raise OSError(22, "negative seek position")
        self._position = base + offset
        return self._position

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        stop = min(self._position + view.nbytes, self.file.size)
        if stop <= self._position:
            return 0
        (data,) = self.file.blocks.read_ranges([(self._position, stop)], ahead=self.file.parser_ahead)
        view[: stop - self._position] = data
        count = stop - self._position
        self._position = stop
        return count
