"""Block arithmetic, the decoded-block cache and stored-block pass-through, for any reader that stores pixels
in blocks (tiles, strips, chunks)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from zarrfs.lru import ByteLRUCache
from zarrfs.sources.base import NativeBlocks


def blocks_touched(start: int, stop: int, block_size: int) -> range:
    """The numbers of the blocks of ``block_size`` that indices start..stop-1 fall in."""
    return range(start // block_size, (stop - 1) // block_size + 1)


def decoded_block_cache(capacity_bytes: int) -> ByteLRUCache[np.ndarray]:
    """Decoded blocks kept for the next region that needs them (typically one huge strip read chunk by
    chunk). A block larger than the whole capacity is still kept, alone: the alternative is decoding a huge
    strip again for every chunk cut from it."""
    return ByteLRUCache(capacity_bytes, sizeof=lambda array: array.nbytes, keep_oversized=True)


class StoredBlocks(Protocol):
    """The stored blocks of one level that can be served unchanged, and how to read one."""

    @property
    def blocks(self) -> NativeBlocks: ...

    def read(self, index: tuple[int, ...]) -> bytes | None: ...


class PassThroughLevels:
    """``ImageSource.native_blocks`` and ``read_native_block`` for a source that keeps, per level, its
    StoredBlocks or None (``_native``); ``_check_open`` raises SourceError once the source is closed."""

    path: str
    _native: Sequence[StoredBlocks | None]

    def _check_open(self) -> None:
        raise NotImplementedError

    def _native_level(self, level: int) -> StoredBlocks | None:
        self._check_open()
        if not 0 <= level < len(self._native):
            raise IndexError(f"level {level} does not exist: the image has {len(self._native)} levels")
        return self._native[level]

    def native_blocks(self, level: int) -> NativeBlocks | None:
        native = self._native_level(level)
        return None if native is None else native.blocks

    def read_native_block(self, level: int, index: tuple[int, ...]) -> bytes | None:
        native = self._native_level(level)
        if native is None:
            raise ValueError(f"level {level} has no native blocks: {self.path}")
        return native.read(index)
