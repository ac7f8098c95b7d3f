"""A source image served as an OME-Zarr image: its levels, arrays, metadata documents and tree.

Both layouts can be served from one tree, their keys never collide: NGFF 0.4 on Zarr v2 (``.zgroup``,
``.zattrs``, ``<level>/.zarray``, chunks ``<level>/<i>/<j>/...``) and NGFF 0.5 on Zarr v3 (``zarr.json``,
``<level>/zarr.json``, chunks ``<level>/c/<i>/<j>/...``). Both share the chunk pixels in the cache.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Any

from zarrfs.core.array import VirtualArray
from zarrfs.core.chunking import resolve_chunks
from zarrfs.core.codecs import Compressor, make_compressor, make_encoding, native_encoding
from zarrfs.core.levels import PixelLevel, StoredLevel, new_cache
from zarrfs.core.ngff import image_attributes_v04, image_attributes_v05
from zarrfs.core.options import ServeOptions
from zarrfs.core.pyramid import ComputedLevel, computed_levels
from zarrfs.core.sharding import ShardedArray
from zarrfs.core.staleness import FileIdentity, SourceWatch, WatchedSource
from zarrfs.core.tree import ChunkFiles, VirtualTree
from zarrfs.lru import ByteLRUCache
from zarrfs.sources import ImageSource, open_source

ZARR_FORMAT = {"0.4": 2, "0.5": 3}


def block_cache_bytes(cache_bytes: int) -> int:
    """The share of the cache budget a source may use for decoded blocks larger than a chunk (such as one
    huge strip); the rest holds served chunks. Together they stay within ``--cache-size``."""
    return cache_bytes // 4


# Coarse computed levels (together at most 1/12 of level 0) may take up to this share of the chunk cache.
COARSE_CACHE_SHARE = 3 / 4


def coarse_levels(
    levels: list[PixelLevel], budget_bytes: int, compressed: bool
) -> tuple[list[PixelLevel], int]:
    """The coarse computed levels that get a cache of their own, and its capacity.

    Making a chunk of a computed level with at most 1/16 of level 0's pixels needs 16 or more level-0
    pixels per pixel, and one coarse chunk, as a viewer asks for first, builds every finer level under it:
    in the shared cache the traffic of levels 0 and 1 would evict those small levels before they are read.
    The coarsest such levels whose chunks (and encoded chunks, for compressed output) fit ``budget_bytes``
    together get exactly the room they need, so that they are never evicted.
    """
    full = math.prod(levels[0].shape)
    chosen: list[PixelLevel] = []
    needed = 0
    for level in reversed(levels):
        if not isinstance(level, ComputedLevel) or 16 * math.prod(level.shape) > full:
            break
        level_bytes = math.prod(level.grid) * math.prod(level.chunks) * level.dtype.itemsize
        if compressed:
            level_bytes *= 2  # the encoded chunks are cached beside the pixels, and are not larger
        if needed + level_bytes > budget_bytes:
            break
        chosen.append(level)
        needed += level_bytes
    return chosen, needed


def _json_bytes(document: dict[str, Any]) -> bytes:
    return (json.dumps(document, indent=2) + "\n").encode()


def zarray_metadata(array: VirtualArray) -> dict[str, Any]:
    """The ``.zarray`` document of a Zarr v2 array with nested ("/") chunk keys."""
    return {
        "zarr_format": 2,
        "shape": list(array.shape),
        "chunks": list(array.chunks),
        "dtype": array.dtype.str,
        "compressor": array.encoding.metadata,
        "fill_value": array.level.fill_value,
        "order": "C",
        "filters": None,
        "dimension_separator": "/",
    }


def zarr_json_array_metadata(array: VirtualArray, axes: str, shards: ShardedArray | None) -> dict[str, Any]:
    """The ``zarr.json`` document of a Zarr v3 array, sharded or not."""
    dtype = array.dtype
    codecs: list[dict[str, Any]] = [{"name": "bytes", "configuration": {"endian": "little"}}]
    if array.encoding.metadata is not None:
        codecs.append(array.encoding.metadata)
    grid_shape = array.chunks
    if shards is not None:
        grid_shape = shards.shard_shape
        index_codecs = [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}]
        sharding = {"chunk_shape": list(array.chunks), "codecs": codecs, "index_codecs": index_codecs}
        codecs = [{"name": "sharding_indexed", "configuration": {**sharding, "index_location": "end"}}]
    return {
        "zarr_format": 3,
        "node_type": "array",
        "shape": list(array.shape),
        "data_type": "bool" if dtype.kind == "b" else dtype.name,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(grid_shape)}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": array.level.fill_value,
        "codecs": codecs,
        "attributes": {},
        "dimension_names": list(axes),
    }


@dataclass
class Layout:
    """One served representation: an NGFF version, its arrays (one per level) and their chunk files."""

    ngff: str
    arrays: list[VirtualArray]
    files: list[ChunkFiles]  # the arrays themselves, or shard files over them


@dataclass
class Dataset:
    """Everything served for one source; owns the source and the shared cache."""

    source: ImageSource
    options: ServeOptions
    compressor: Compressor
    cache: ByteLRUCache[Any]  # chunks of every level but the coarse computed ones
    coarse_cache: ByteLRUCache[Any]  # chunks of the coarse computed levels (see coarse_levels)
    levels: list[PixelLevel]
    layouts: list[Layout]
    tree: VirtualTree
    name: str

    def close(self) -> None:
        self.source.close()


def _native_source(
    source: ImageSource, level: PixelLevel, compressor: Compressor, zarr_format: int, enabled: bool
) -> tuple[ImageSource, int] | None:
    """The source and level to pass stored blocks through from, when they are exactly this array's chunks."""
    if not enabled or not isinstance(level, StoredLevel):
        return None
    native = source.native_blocks(level.level)
    if native is None or native.block_shape != level.chunks:
        return None
    if not native_encoding(native.codec, zarr_format, compressor):
        return None
    return source, level.level


def _build_layout(
    ngff: str, source: ImageSource, levels: list[PixelLevel], compressor: Compressor, options: ServeOptions
) -> Layout:
    zarr_format = ZARR_FORMAT[ngff]
    arrays, files = [], []
    for level in levels:
        encoding = make_encoding(compressor, zarr_format, level.dtype)
        native = _native_source(source, level, compressor, zarr_format, options.passthrough)
        array = VirtualArray(level, encoding, native)
        arrays.append(array)
        if zarr_format == 3 and options.shards is not None:
            per_shard = tuple(
                min(options.shards, grid) if axis in "yx" else 1
                for axis, grid in zip(source.info.axes, array.grid, strict=True)
            )
            files.append(ShardedArray(array, per_shard))
        else:
            files.append(array)
    return Layout(ngff, arrays, files)


def _documents(layout: Layout, source: ImageSource, name: str, method: str | None) -> dict[str, bytes]:
    info = source.info
    levels = [(array.level.name, array.level.downsampling) for array in layout.arrays]
    if layout.ngff == "0.4":
        documents = {
            ".zgroup": _json_bytes({"zarr_format": 2}),
            ".zattrs": _json_bytes(image_attributes_v04(info, levels, name, method)),
        }
        for array in layout.arrays:
            documents[f"{array.level.name}/.zarray"] = _json_bytes(zarray_metadata(array))
        return documents
    group = {
        "zarr_format": 3,
        "node_type": "group",
        "attributes": image_attributes_v05(info, levels, name, method),
    }
    documents = {"zarr.json": _json_bytes(group)}
    for array, files in zip(layout.arrays, layout.files, strict=True):
        shards = files if isinstance(files, ShardedArray) else None
        metadata = zarr_json_array_metadata(array, info.axes, shards)
        documents[f"{array.level.name}/zarr.json"] = _json_bytes(metadata)
    return documents


def build_dataset(source: ImageSource, options: ServeOptions, watch: SourceWatch | None = None) -> Dataset:
    """Serve ``source``, watching its files from ``watch`` on (default: a watch started now)."""
    watch = watch or SourceWatch.of(source.files())
    # Every read of the source's files goes through the watch: no chunk holds a byte of a changed file.
    source = WatchedSource(source, watch)
    info = source.info
    compressor = make_compressor(options.compressor, options.clevel)
    chunk_cache_bytes = options.cache_bytes - block_cache_bytes(options.cache_bytes)
    # The levels are built on the whole chunk share; once their sizes are known, the coarse ones get a cache
    # of their own out of it.
    cache = new_cache(chunk_cache_bytes)
    name = os.path.basename(source.path)
    levels: list[PixelLevel] = []
    for index, stored in enumerate(info.levels):
        chunks = resolve_chunks(info.axes, stored, info.dtype.itemsize, options.chunks)
        levels.append(StoredLevel(source, index, chunks, cache))
    added = computed_levels(levels, info, options)
    method = options.downsample if added else None
    levels += added
    coarse, coarse_bytes = coarse_levels(
        levels, int(chunk_cache_bytes * COARSE_CACHE_SHARE), options.compressor != "none"
    )
    cache = new_cache(chunk_cache_bytes - coarse_bytes)  # together the caches stay within --cache-size
    coarse_cache = new_cache(coarse_bytes)
    for level in levels:
        level.cache = coarse_cache if level in coarse else cache
    layouts = [_build_layout(ngff, source, levels, compressor, options) for ngff in options.ngff]
    documents: dict[str, bytes] = {}
    arrays: dict[str, dict[str, ChunkFiles]] = {}
    for layout in layouts:
        documents.update(_documents(layout, source, name, method))
        prefix = "" if layout.ngff == "0.4" else "c"
        for level, files in zip(levels, layout.files, strict=True):
            arrays.setdefault(level.name, {})[prefix] = files
    tree = VirtualTree(documents, arrays, guard=watch.check, recheck_due=watch.recheck_due)
    return Dataset(source, options, compressor, cache, coarse_cache, levels, layouts, tree, name)


def open_dataset(path: str | os.PathLike[str], options: ServeOptions | None = None) -> Dataset:
    """Open ``path`` and build its virtual tree: metadata only, no pixel data is read."""
    options = options or ServeOptions()
    # The file as it is before any of its bytes is read: a change while it is being opened shows at the first
    # check. (A file that cannot be looked up is left to open_source, which says why.)
    try:
        before = {os.path.abspath(path): FileIdentity.of(os.fspath(path))}
    except OSError:
        before = {}
    source = open_source(path, options.series, block_cache_bytes(options.cache_bytes))
    try:
        return build_dataset(source, options, SourceWatch.of(source.files(), known=before))
    except BaseException:
        source.close()
        raise
