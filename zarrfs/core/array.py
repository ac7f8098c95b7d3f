"""One served Zarr array: chunk files of a level in one encoding, with exact sizes and partial reads."""

from __future__ import annotations

import math

import numpy as np

from zarrfs.core.codecs import Encoding
from zarrfs.core.levels import ChunkIndex, PixelLevel
from zarrfs.sources import ImageSource


class VirtualArray:
    """The chunk files of ``level`` encoded with ``encoding``.

    With ``native`` (a source and its stored level whose blocks are this array's chunks, in this encoding's
    byte stream) chunk files are the source's stored bytes, passed through with no decode or encode.
    """

    def __init__(
        self, level: PixelLevel, encoding: Encoding, native: tuple[ImageSource, int] | None = None
    ) -> None:
        self.level = level
        self.encoding = encoding
        self.native = native
        self.grid = level.grid
        self.raw_chunk_nbytes = math.prod(level.chunks) * level.dtype.itemsize
        # Exact sizes of encoded chunks, remembered after the first encode (a few bytes per chunk) so that a
        # size asked again after eviction needs no new encode.
        self._encoded_sizes: dict[ChunkIndex, int] = {}

    @property
    def shape(self) -> tuple[int, ...]:
        return self.level.shape

    @property
    def chunks(self) -> tuple[int, ...]:
        return self.level.chunks

    @property
    def dtype(self) -> np.dtype:
        return self.level.dtype

    def contains(self, index: ChunkIndex) -> bool:
        return self.level.contains(index)

    def file_size(self, index: ChunkIndex) -> int:
        """The exact size of the chunk's file; for compressed output this encodes the chunk once."""
        if self.native is None and self.encoding.is_raw:
            return self.raw_chunk_nbytes
        size = self._encoded_sizes.get(index)
        if size is None:
            size = len(self.chunk_bytes(index))
        return size

    def read(self, index: ChunkIndex, offset: int, size: int) -> bytes:
        if self.native is None and self.encoding.is_raw:
            # Raw chunks are the cached pixels themselves: copy out only the bytes asked for.
            view = memoryview(self.level.chunk_pixels(index)).cast("B")
            return bytes(view[offset : offset + size])
        return self.chunk_bytes(index)[offset : offset + size]

    def chunk_bytes(self, index: ChunkIndex) -> bytes:
        if self.native is not None:
            source, level = self.native
            stored = source.read_native_block(level, index)
            if stored is not None:
                self._encoded_sizes[index] = len(stored)
                return stored  # the page cache keeps it; no need to hold it twice
        if self.encoding.is_raw:
            return self.level.chunk_pixels(index).tobytes()
        key = ("encoded", self.encoding.key, self.level.name, index)
        value = self.level.cache.get_or_compute(key, lambda: self._encode(index))
        assert isinstance(value, bytes)
        return value

    def _encode(self, index: ChunkIndex) -> bytes:
        encoded = self.encoding.encode(self.level.chunk_pixels(index))
        self._encoded_sizes[index] = len(encoded)
        return encoded
