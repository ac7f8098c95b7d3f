"""Pass-through: the stored chunk files of an array served unchanged, where a served Zarr chunk with the same
grid decodes from them as they are.

That holds for Zarr v2 arrays stored in C order, little-endian, with no filters and no compressor or zlib,
zstd or blosc; and for Zarr v3 arrays whose codecs are ``bytes`` (little-endian) and at most one of gzip,
zstd or blosc (blosc with byte shuffle or none, its type size the item size: the served metadata states
those). Sharded, transposed and N5 arrays are decoded (an N5 block starts with a header of its own).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from zarrfs.errors import SourceError
from zarrfs.sources.base import NativeBlocks
from zarrfs.sources.zarrstore.nodes import ZARR2, ZARR3, Node
from zarrfs.sources.zarrstore.storage import OversizedFile, StoreFiles

_V2_CODECS = frozenset({"zlib", "zstd", "blosc"})
_V3_SHUFFLES = {"noshuffle": 0, "shuffle": 1}
# No codec passed through makes a chunk file larger than this (they add headers, and barely grow noise).
MAX_EXPANSION = 4
MAX_OVERHEAD_BYTES = 2**20


@dataclass(frozen=True)
class NativeChunks:
    """Where the chunk files of one array are, and how to read one."""

    blocks: NativeBlocks
    files: StoreFiles
    directory: str  # the array's, relative to the store's root
    grid_shape: tuple[int, ...]
    key: Callable[[tuple[int, ...]], str]  # chunk index -> path relative to the array's directory
    max_bytes: int  # a larger chunk file is corrupt: refused without reading (or allocating) it; raw: exact

    def read(self, index: tuple[int, ...]) -> bytes | None:
        """The stored bytes of chunk ``index``, or None where no file was written (fill value)."""
        if len(index) != len(self.grid_shape) or not all(
            0 <= position < blocks for position, blocks in zip(index, self.grid_shape, strict=True)
        ):
            raise IndexError(f"chunk index {tuple(index)} is outside the chunk grid {self.grid_shape}")
        relative = f"{self.directory}/{self.key(tuple(index))}" if self.directory else self.key(tuple(index))
        try:
            data = self.files.read(relative, self.max_bytes)
            size = None if data is None else len(data)
        except OversizedFile as oversized:
            data, size = None, oversized.size
        if size is None:
            return None
        location = self.files.location(relative)
        if self.blocks.codec is None and size != self.max_bytes:
            raise SourceError(
                f"chunk file {location} is corrupt: {size} bytes, a raw chunk is {self.max_bytes}"
            )
        if size > self.max_bytes:
            raise SourceError(
                f"chunk file {location} is corrupt: {size} bytes, more than any encoding of its chunk takes "
                f"({self.max_bytes})"
            )
        return data


def _v2_codec(metadata: Mapping[str, Any], dtype: np.dtype) -> tuple[bool, dict[str, Any] | None]:
    """(passes through, numcodecs config) of a Zarr v2 array."""
    stored = np.dtype(metadata.get("dtype"))
    if metadata.get("order", "C") != "C" or metadata.get("filters") or not _little_endian(stored, dtype):
        return False, None
    compressor = metadata.get("compressor")
    if compressor is None:
        return True, None
    if not isinstance(compressor, Mapping) or compressor.get("id") not in _V2_CODECS:
        return False, None
    return True, dict(compressor)


def _v3_codec(metadata: Mapping[str, Any], dtype: np.dtype) -> tuple[bool, dict[str, Any] | None]:
    """(passes through, numcodecs config) of a Zarr v3 array."""
    codecs = [
        codec if isinstance(codec, Mapping) else {"name": codec} for codec in metadata.get("codecs") or ()
    ]
    if not codecs or codecs[0].get("name") != "bytes" or len(codecs) > 2:
        return False, None
    endian = (codecs[0].get("configuration") or {}).get("endian", "little")
    if endian != "little" and dtype.itemsize > 1:
        return False, None
    if len(codecs) == 1:
        return True, None
    name, configuration = codecs[1].get("name"), dict(codecs[1].get("configuration") or {})
    if name == "gzip":
        return True, {"id": "gzip", "level": configuration.get("level", 1)}
    if name == "zstd":
        return True, {
            "id": "zstd",
            "level": configuration.get("level", 0),
            "checksum": configuration.get("checksum", False),
        }
    if name == "blosc":
        shuffle = _V3_SHUFFLES.get(configuration.get("shuffle", "noshuffle"))
        typesize = configuration.get("typesize", dtype.itemsize)
        if shuffle is None or typesize != dtype.itemsize:
            return False, None  # bit shuffle, or a type size the served metadata would misstate
        return True, {
            "id": "blosc",
            "cname": configuration.get("cname"),
            "clevel": configuration.get("clevel"),
            "shuffle": shuffle,
            "blocksize": configuration.get("blocksize", 0),
        }
    return False, None


def _little_endian(stored: np.dtype, dtype: np.dtype) -> bool:
    return (
        stored.fields is None
        and (
            stored.itemsize == 1 or stored.byteorder == "<" or (stored.byteorder == "=" and np.little_endian)
        )
        and stored.newbyteorder("=") == dtype
    )


def _chunk_key(node: Node) -> Callable[[tuple[int, ...]], str] | None:
    metadata = node.metadata
    if node.format == ZARR2:
        separator = str(metadata.get("dimension_separator") or ".")
        return lambda index: separator.join(map(str, index))
    encoding = metadata.get("chunk_key_encoding") or {"name": "default"}
    name = encoding.get("name")
    configuration = encoding.get("configuration") or {}
    if name == "default":
        separator = str(configuration.get("separator", "/"))
        return lambda index: separator.join(("c", *map(str, index)))
    if name == "v2":
        separator = str(configuration.get("separator", "."))
        return lambda index: separator.join(map(str, index))
    return None


def _stored_chunks(node: Node) -> tuple[int, ...] | None:
    if node.format == ZARR2:
        return tuple(int(size) for size in node.metadata["chunks"])
    grid = node.metadata.get("chunk_grid") or {}
    if grid.get("name") != "regular":
        return None
    return tuple(int(size) for size in (grid.get("configuration") or {}).get("chunk_shape", ()))


def native_chunks(node: Node, dtype: np.dtype) -> NativeChunks | None:
    """The array's chunk files as native blocks (the caller checks that the stored order is the canonical
    one), or None when a served chunk cannot be them."""
    if node.format == ZARR2:
        passes, codec = _v2_codec(node.metadata, dtype)
    elif node.format == ZARR3:
        passes, codec = _v3_codec(node.metadata, dtype)
    else:
        return None
    chunks, key = _stored_chunks(node), _chunk_key(node)
    if not passes or chunks is None or key is None:
        return None
    shape = node.shape
    grid = tuple(math.ceil(extent / chunk) for extent, chunk in zip(shape, chunks, strict=True))
    raw_bytes = math.prod(chunks) * dtype.itemsize
    limit = raw_bytes if codec is None else MAX_EXPANSION * raw_bytes + MAX_OVERHEAD_BYTES
    return NativeChunks(NativeBlocks(chunks, codec), node.files, node.path, grid, key, limit)
