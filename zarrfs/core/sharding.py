"""Zarr v3 shard files (``sharding_indexed``): several chunks in one file, index at the end.

A shard is never built whole: its layout (where each inner chunk starts) follows from the inner chunks'
exact sizes, so a read at any offset copies just the inner chunk bytes and index bytes it covers.
"""

from __future__ import annotations

import itertools
import math
import struct

import google_crc32c
import numpy as np

from zarrfs.core.array import VirtualArray
from zarrfs.core.levels import ChunkIndex
from zarrfs.core.tree import FileBytes

MISSING = 2**64 - 1  # index entry of an inner chunk that lies wholly outside the array
INDEX_ENTRY_BYTES = 16  # offset and size, two little-endian uint64
CHECKSUM_BYTES = 4


class ShardedArray:
    """Shard files over the chunks of ``inner``; ``chunks_per_shard`` inner chunks per shard on each axis."""

    def __init__(self, inner: VirtualArray, chunks_per_shard: tuple[int, ...]) -> None:
        self.inner = inner
        self.chunks_per_shard = chunks_per_shard
        self.shard_shape = tuple(c * n for c, n in zip(inner.chunks, chunks_per_shard, strict=True))
        self.grid = tuple(math.ceil(g / n) for g, n in zip(inner.grid, chunks_per_shard, strict=True))
        self.index_nbytes = math.prod(chunks_per_shard) * INDEX_ENTRY_BYTES + CHECKSUM_BYTES

    @property
    def computed_depth(self) -> int:
        return self.inner.computed_depth

    def contains(self, index: ChunkIndex) -> bool:
        return len(index) == len(self.grid) and all(0 <= i < n for i, n in zip(index, self.grid, strict=True))

    def _inner_indices(self, shard: ChunkIndex) -> list[ChunkIndex | None]:
        """Inner chunk indices in C order (the index order), None where a chunk lies outside the array."""
        indices: list[ChunkIndex | None] = []
        for local in np.ndindex(*self.chunks_per_shard):
            index = tuple(s * n + i for s, n, i in zip(shard, self.chunks_per_shard, local, strict=True))
            indices.append(index if self.inner.contains(index) else None)
        return indices

    def _layout(self, shard: ChunkIndex, blocking: bool = True) -> list[tuple[ChunkIndex | None, int, int]]:
        """(inner index, offset, size) of each inner chunk, packed in index order from offset 0."""
        layout = []
        offset = 0
        for index in self._inner_indices(shard):
            size = 0 if index is None else self.inner.file_size(index, blocking)
            layout.append((index, offset, size))
            offset += size
        return layout

    def _index_bytes(self, layout: list[tuple[ChunkIndex | None, int, int]]) -> bytes:
        entries = itertools.chain.from_iterable(
            (MISSING, MISSING) if index is None else (offset, size) for index, offset, size in layout
        )
        table = struct.pack(f"<{2 * len(layout)}Q", *entries)
        return table + struct.pack("<I", google_crc32c.value(table))

    def file_size(self, shard: ChunkIndex, blocking: bool = True) -> int:
        return sum(size for _, _, size in self._layout(shard, blocking)) + self.index_nbytes

    def read(self, shard: ChunkIndex, offset: int, size: int, blocking: bool = True) -> FileBytes:
        layout = self._layout(shard, blocking)
        data_end = sum(part_size for _, _, part_size in layout)
        end = offset + size
        parts = []
        for index, start, part_size in layout:
            if index is not None and start < end and offset < start + part_size:
                low, high = max(offset, start) - start, min(end, start + part_size) - start
                parts.append(self.inner.read(index, low, high - low, blocking))
        if end > data_end:
            index_bytes = self._index_bytes(layout)
            parts.append(index_bytes[max(0, offset - data_end) : end - data_end])
        # A read within one inner chunk stays a view of it; only reads across chunks are joined.
        return parts[0] if len(parts) == 1 else b"".join(parts)
