"""A source image served as an OME-Zarr image: its levels, arrays, metadata documents and tree.

Both layouts can be served from one tree, their keys never collide: NGFF 0.4 on Zarr v2 (``.zgroup``,
``.zattrs``, ``<level>/.zarray``, chunks ``<level>/<i>/<j>/...``) and NGFF 0.5 on Zarr v3 (``zarr.json``,
``<level>/zarr.json``, chunks ``<level>/c/<i>/<j>/...``). Both share the chunk pixels in the cache.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from zarrfs.core.array import VirtualArray
from zarrfs.core.chunking import cache_room, check_cache_room, default_chunk_limit, resolve_chunks
from zarrfs.core.codecs import Compressor, make_compressor
from zarrfs.core.formats import FORMATS, NgffFormat, json_bytes
from zarrfs.core.levels import FanOut, PixelLevel, StoredLevel, new_cache
from zarrfs.core.options import ServeOptions
from zarrfs.core.pyramid import ComputedLevel, computed_levels
from zarrfs.core.sharding import ShardedArray
from zarrfs.core.staleness import SourceWatch, WatchedSource
from zarrfs.core.tree import ChunkFiles, VirtualTree
from zarrfs.core.windows import DisplayWindows, display_windows
from zarrfs.lru import ENTRY_OVERHEAD_BYTES, ByteLRUCache
from zarrfs.sources import ImageSource, open_source
from zarrfs.sources.identity import FileIdentity


def block_cache_bytes(cache_bytes: int) -> int:
    """The share of the cache budget a source may use for decoded blocks larger than a chunk (such as one
    huge strip); the rest holds served chunks. Together they stay within ``--cache-size``."""
    return cache_bytes // 4


def chunk_cache_bytes(cache_bytes: int) -> int:
    """The rest of the cache budget: served chunks, of the coarse computed levels and of all others."""
    return cache_bytes - block_cache_bytes(cache_bytes)


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
        chunk_bytes = math.prod(level.chunks) * level.dtype.itemsize
        if compressed:
            # The encoded chunk (not larger) and its remembered size are cached beside the pixels.
            chunk_bytes = 2 * chunk_bytes + 2 * ENTRY_OVERHEAD_BYTES
        level_bytes = math.prod(level.grid) * (chunk_bytes + ENTRY_OVERHEAD_BYTES)
        if needed + level_bytes > budget_bytes:
            break
        chosen.append(level)
        needed += level_bytes
    return chosen, needed


@dataclass
class Layout:
    """One served representation: an NGFF version, its arrays (one per level) and their chunk files."""

    format: NgffFormat
    arrays: list[VirtualArray]
    files: list[ChunkFiles]  # the arrays themselves, or shard files over them

    @property
    def ngff(self) -> str:
        return self.format.version


@dataclass
class Dataset:
    """Everything served for one source; owns the source, the shared cache and the workers that make the
    chunks a computed chunk needs."""

    source: ImageSource
    options: ServeOptions
    compressor: Compressor
    cache: ByteLRUCache[Any]  # chunks of every level but the coarse computed ones
    coarse_cache: ByteLRUCache[Any]  # chunks of the coarse computed levels (see coarse_levels)
    levels: list[PixelLevel]
    layouts: list[Layout]
    tree: VirtualTree
    name: str
    fanout: FanOut
    windows: DisplayWindows
    watch: SourceWatch  # the identity of every source file when opened, checked before chunks are served

    def close(self) -> None:
        self.source.close()
        self.fanout.close()


def _native_source(
    source: ImageSource, level: PixelLevel, compressor: Compressor, fmt: NgffFormat, enabled: bool
) -> tuple[ImageSource, int] | None:
    """The source and level to pass stored blocks through from, when they are exactly this array's chunks."""
    if not enabled or not isinstance(level, StoredLevel):
        return None
    native = source.native_blocks(level.level)
    if native is None or native.block_shape != level.chunks:
        return None
    if not fmt.serves_stored(native, compressor):
        return None
    return source, level.level


def _build_layout(
    fmt: NgffFormat,
    source: ImageSource,
    levels: list[PixelLevel],
    compressor: Compressor,
    options: ServeOptions,
) -> Layout:
    arrays: list[VirtualArray] = []
    files: list[ChunkFiles] = []
    for level in levels:
        encoding = fmt.encoding(compressor, level.dtype)
        native = _native_source(source, level, compressor, fmt, options.passthrough)
        array = VirtualArray(level, encoding, native)
        arrays.append(array)
        if fmt.supports_sharding and options.shards is not None:
            per_shard = tuple(
                min(options.shards, grid) if axis in "yx" else 1
                for axis, grid in zip(source.info.axes, array.grid, strict=True)
            )
            files.append(ShardedArray(array, per_shard))
        else:
            files.append(array)
    return Layout(fmt, arrays, files)


def _documents(
    layout: Layout, source: ImageSource, name: str, method: str | None, windows: DisplayWindows
) -> dict[str, bytes]:
    fmt = layout.format
    levels = [
        (array.level.name, array.level.downsampling, array.level.first_pixel_centre)
        for array in layout.arrays
    ]
    documents = fmt.group_documents(source.info, levels, name, method, windows.channels)
    for array, files in zip(layout.arrays, layout.files, strict=True):
        shards = files if isinstance(files, ShardedArray) else None
        for file_name, document in fmt.array_documents(array, source.info.axes, shards).items():
            documents[f"{array.level.name}/{file_name}"] = document
    return {path: json_bytes(document) for path, document in fmt.consolidated(documents).items()}


def build_dataset(source: ImageSource, options: ServeOptions, watch: SourceWatch | None = None) -> Dataset:
    """Serve ``source``, watching its files from ``watch`` on (default: a watch started now)."""
    watch = watch or SourceWatch.of(source.watched_files())
    info = source.info
    if options.pixel_sizes:
        # The user's sizes replace the source's, for everything served and described from here on.
        info = dataclasses.replace(info, physical_sizes={**info.physical_sizes, **options.pixel_sizes})
        source.info = info
    # Every read of the source's files goes through the watch: no chunk holds a byte of a changed file.
    watched = WatchedSource(source, watch)
    compressor = make_compressor(options.compressor, options.clevel)
    chunk_share = chunk_cache_bytes(options.cache_bytes)
    # The levels are built on the whole chunk share; once their sizes are known, the coarse ones get a cache
    # of their own out of it.
    cache = new_cache(chunk_share)
    name = os.path.basename(source.path)
    levels: list[PixelLevel] = []
    fanout = FanOut()
    for index, stored in enumerate(info.levels):
        chunks = resolve_chunks(
            info.axes, stored, info.dtype.itemsize, options.chunks, default_chunk_limit(chunk_share)
        )
        levels.append(StoredLevel(watched, index, chunks, cache, fanout))
    # Computed levels have their parent's chunks or smaller ones.
    largest_chunk = max(math.prod(level.chunks) for level in levels) * info.dtype.itemsize
    check_cache_room(largest_chunk, options.cache_bytes, chunk_cache_bytes, options.chunks is not None)
    added = computed_levels(levels, info, options)
    method = options.downsample if added else None
    levels += added
    # The coarse levels' cache leaves the others room for their largest chunk.
    coarse_budget = min(int(chunk_share * COARSE_CACHE_SHARE), chunk_share - cache_room(largest_chunk))
    coarse, coarse_bytes = coarse_levels(levels, coarse_budget, options.compressor != "none")
    cache = new_cache(chunk_share - coarse_bytes)  # together the caches stay within --cache-size
    coarse_cache = new_cache(coarse_bytes)
    for level in levels:
        level.cache = coarse_cache if level in coarse else cache
    layouts = [_build_layout(FORMATS[ngff], watched, levels, compressor, options) for ngff in options.ngff]
    windows = display_windows(watched)
    documents: dict[str, bytes] = {}
    arrays: dict[str, dict[str, ChunkFiles]] = {}
    for layout in layouts:
        documents.update(_documents(layout, source, name, method, windows))
        for level, files in zip(levels, layout.files, strict=True):
            arrays.setdefault(level.name, {})[layout.format.chunk_prefix] = files
    tree = VirtualTree(documents, arrays, guard=watch.check, recheck_due=watch.recheck_due)
    return Dataset(
        source, options, compressor, cache, coarse_cache, levels, layouts, tree, name, fanout, windows, watch
    )


def open_dataset(
    path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], options: ServeOptions | None = None
) -> Dataset:
    """Open ``path`` (a file, a glob pattern, a list of files) and build its virtual tree: metadata, and a
    sample of pixels of a bounded size for the display windows (see windows.py)."""
    options = options or ServeOptions()
    # The file as it is before any of its bytes is read: a change while it is being opened shows at the first
    # check. (A file that cannot be looked up, or a file set, is left to open_source, which says why.)
    before = {}
    if isinstance(path, str | os.PathLike):
        with contextlib.suppress(OSError):
            before = {os.path.abspath(path): FileIdentity.of(os.fspath(path))}
    source = open_source(path, options.source, block_cache_bytes(options.cache_bytes), remote=options.remote)
    try:
        return build_dataset(source, options, SourceWatch.of(source.watched_files(), known=before))
    except BaseException:
        source.close()
        raise
