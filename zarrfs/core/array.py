"""One served Zarr array: the translation of a chunk index into a source region, padding and encoding."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator

import numpy as np

from zarrfs.core.codecs import OutputCodec
from zarrfs.lru import ByteLRUCache
from zarrfs.sources import ImageSource

log = logging.getLogger(__name__)

ChunkIndex = tuple[int, ...]


class ChunkReadError(OSError):
    """A chunk could not be produced (source read or decode failed); front ends report an I/O error."""


class VirtualArray:
    """Level ``level`` of ``source`` as a chunked array whose chunk bytes are made on demand."""

    def __init__(
        self,
        name: str,
        source: ImageSource,
        level: int,
        chunks: tuple[int, ...],
        codec: OutputCodec,
        cache: ByteLRUCache,
    ) -> None:
        self.name = name
        self.source = source
        self.level = level
        self.shape = source.info.levels[level].shape
        self.chunks = chunks
        self.codec = codec
        self.cache = cache
        # Served arrays are always little-endian, whatever the source's byte order.
        self.dtype = source.info.dtype.newbyteorder("<")
        self.grid = tuple(math.ceil(extent / chunk) for extent, chunk in zip(self.shape, chunks, strict=True))
        self.raw_chunk_nbytes = math.prod(chunks) * self.dtype.itemsize
        # Exact sizes of encoded chunks, remembered after the first encode (a few bytes per chunk) so that a
        # size asked again after eviction needs no new encode.
        self._encoded_sizes: dict[ChunkIndex, int] = {}

    @property
    def fill_value(self) -> int | float | bool:
        return self.dtype.type(0).item()

    def contains(self, index: ChunkIndex) -> bool:
        return len(index) == len(self.grid) and all(0 <= i < n for i, n in zip(index, self.grid, strict=True))

    def chunk_region(self, index: ChunkIndex) -> tuple[slice, ...]:
        return tuple(
            slice(i * chunk, min((i + 1) * chunk, extent))
            for i, chunk, extent in zip(index, self.chunks, self.shape, strict=True)
        )

    def chunk_indices(self) -> Iterator[ChunkIndex]:
        return np.ndindex(*self.grid)

    def chunk_nbytes(self, index: ChunkIndex) -> int:
        """The exact size of the chunk's file; for compressed output this encodes the chunk once."""
        if self.codec.codec is None:
            return self.raw_chunk_nbytes
        size = self._encoded_sizes.get(index)
        if size is None:
            size = len(self.chunk_bytes(index))
        return size

    def chunk_bytes(self, index: ChunkIndex) -> bytes:
        key = (self.name, index)
        return self.cache.get_or_compute(key, lambda: self._make_chunk(index))

    def _make_chunk(self, index: ChunkIndex) -> bytes:
        region = self.chunk_region(index)
        try:
            pixels = self.source.read_region(self.level, region)
        except Exception as error:
            log.error("chunk %s of level %d: source read failed: %s", index, self.level, error)
            raise ChunkReadError(f"cannot read chunk {index}: {error}") from error
        if pixels.shape != self.chunks:
            # Edge chunks are stored full-size, padded with the fill value, as Zarr requires.
            padded = np.full(self.chunks, self.fill_value, dtype=self.dtype)
            padded[tuple(slice(0, extent) for extent in pixels.shape)] = pixels
            pixels = padded
        encoded = self.codec.encode(np.ascontiguousarray(pixels, dtype=self.dtype).tobytes())
        if self.codec.codec is not None:
            self._encoded_sizes[index] = len(encoded)
        return encoded
