"""One served Zarr array: chunk files of a level in one encoding, with exact sizes and partial reads."""

from __future__ import annotations

import math

import numpy as np

from zarrfs.core.codecs import Encoding
from zarrfs.core.levels import ChunkIndex, PixelLevel
from zarrfs.core.tree import FileBytes, WouldBlock
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

    @property
    def computed_depth(self) -> int:
        return self.level.computed_depth

    def contains(self, index: ChunkIndex) -> bool:
        return self.level.contains(index)

    def file_size(self, index: ChunkIndex, blocking: bool = True) -> int:
        """The exact size of the chunk's file; for compressed output this encodes the chunk once. Without
        ``blocking``, raises WouldBlock instead of encoding."""
        if self.native is None and self.encoding.is_raw:
            return self.raw_chunk_nbytes
        size = self._encoded_sizes.get(index)
        if size is None:
            if not blocking:
                raise WouldBlock
            size = len(self.chunk_bytes(index))
        return size

    def read(self, index: ChunkIndex, offset: int, size: int, blocking: bool = True) -> FileBytes:
        """Bytes ``offset`` to ``offset + size`` of the chunk's file, as a view of the cached chunk: the only
        copy is the reader's. Without ``blocking``, raises WouldBlock unless the cache holds the chunk."""
        return self.chunk_bytes(index, blocking)[offset : offset + size]

    def chunk_bytes(self, index: ChunkIndex, blocking: bool = True) -> FileBytes:
        """The whole chunk file, read-only (see ``read``)."""
        if self.native is not None:
            if not blocking:
                raise WouldBlock  # stored bytes are read from the source file every time
            source, level = self.native
            stored = source.read_native_block(level, index)
            if stored is not None:
                self._encoded_sizes[index] = len(stored)
                return memoryview(stored)  # the page cache keeps it; no need to hold it twice
        if self.encoding.is_raw:
            # Raw chunks are the cached pixels themselves.
            pixels = self.level.chunk_pixels(index) if blocking else self.level.cached_chunk_pixels(index)
            if pixels is None:
                raise WouldBlock
            return memoryview(pixels).cast("B")
        key = ("encoded", self.encoding.key, self.level.name, index)
        if blocking:
            value = self.level.cache.get_or_compute(key, lambda: self._encode(index))
        else:
            value = self.level.cache.peek(key)
            if value is None:
                raise WouldBlock
        assert isinstance(value, bytes)
        return memoryview(value)

    def _encode(self, index: ChunkIndex) -> bytes:
        encoded = self.encoding.encode(self.level.chunk_pixels(index))
        self._encoded_sizes[index] = len(encoded)
        return encoded
