"""One served Zarr array: chunk files of a level in one encoding, with exact sizes and partial reads."""

from __future__ import annotations

import logging
import math

import numpy as np

from zarrfs.core.codecs import Encoding
from zarrfs.core.levels import ChunkIndex, ChunkReadError, PixelLevel
from zarrfs.core.tree import FileBytes, WouldBlock
from zarrfs.sources import CodecConfig, ImageSource

log = logging.getLogger(__name__)


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

    @property
    def filters(self) -> tuple[CodecConfig, ...]:
        """The numcodecs filters of chunk files after their codec (those of stored blocks passed through)."""
        if self.native is None:
            return ()
        source, level = self.native
        blocks = source.native_blocks(level)
        return () if blocks is None else blocks.filters

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
        size = self.level.cache.peek(self._size_key(index))
        if size is None:
            if not blocking:
                raise WouldBlock
            size = len(self.chunk_bytes(index))
        assert isinstance(size, int)
        return size

    def _size_key(self, index: ChunkIndex) -> tuple[object, ...]:
        return ("size", self.encoding.key, self.native is not None, self.level.name, index)

    def _remember_size(self, index: ChunkIndex, size: int) -> None:
        """Keep the exact size of an encoded chunk, so that a size asked again after the chunk's eviction
        needs no new encode. Kept in the level's cache, which counts its entry: one per chunk ever encoded
        would otherwise grow without bound on a large image of small chunks."""
        self.level.cache.get_or_compute(self._size_key(index), lambda: size)

    def read(self, index: ChunkIndex, offset: int, size: int, blocking: bool = True) -> FileBytes:
        """Bytes ``offset`` to ``offset + size`` of the chunk's file, as a view of the cached chunk: the only
        copy is the reader's. Without ``blocking``, raises WouldBlock unless the cache holds the chunk."""
        return self.chunk_bytes(index, blocking)[offset : offset + size]

    def chunk_bytes(self, index: ChunkIndex, blocking: bool = True) -> FileBytes:
        """The whole chunk file, read-only (see ``read``)."""
        if self.native is not None:
            if not blocking:
                raise WouldBlock  # stored bytes are read from the source file every time
            stored = self._read_stored(index)
            if stored is not None:
                self._remember_size(index, len(stored))
                return memoryview(stored)  # the page cache keeps it; no need to hold it twice
        if self.encoding.is_raw:
            # Raw chunks are the cached pixels themselves.
            pixels = self.level.chunk_pixels(index) if blocking else self.level.cached_chunk_pixels(index)
            if pixels is None:
                raise WouldBlock
            return memoryview(pixels.data).cast("B")
        key = ("encoded", self.encoding.key, self.level.name, index)
        value = (
            self.level.cache.get_or_compute(key, lambda: self._encode(index))
            if blocking
            else self.level.cache.peek(key)
        )
        if value is None:
            raise WouldBlock
        assert isinstance(value, bytes)
        return memoryview(value)

    def _read_stored(self, index: ChunkIndex) -> bytes | None:
        """The chunk's stored bytes (None where the file stores none). A failure fails this chunk only, as
        for decoded chunks: one log line and a ChunkReadError, which every front end reports as an I/O
        error."""
        assert self.native is not None
        source, level = self.native
        try:
            return source.read_native_block(level, index)
        except Exception as error:
            log.error("level %s chunk %s: stored tile read failed: %s", self.level.name, index, error)
            raise ChunkReadError(f"cannot read chunk {index} of level {self.level.name}: {error}") from error

    def _encode(self, index: ChunkIndex) -> bytes:
        encoded = self.encoding.encode(self.level.chunk_pixels(index))
        self._remember_size(index, len(encoded))
        return encoded
