"""Choosing the chunk shape: aligned to what the source decodes in one piece, unless the user decides; and
checking that the chunks suit the cache that holds them."""

from __future__ import annotations

import math
from collections.abc import Callable

from zarrfs.errors import ZarrfsError
from zarrfs.lru import ENTRY_OVERHEAD_BYTES
from zarrfs.sources import Level

# Planes are chunked to at least this many pixels per side: the size most NGFF viewers and tools expect.
PLANE_CHUNK_SIDE = 512
# A chunk above this would make every read of it slow and memory-hungry.
MAX_CHUNK_BYTES = 16 * 2**20
# Full-width strip bands are grown towards this size, a good FUSE request size.
STRIP_BAND_BYTES = 4 * 2**20
# Default chunks of planes smaller than this stack planes along z, then t, up to this size: the cache's
# overhead per chunk (ENTRY_OVERHEAD_BYTES) then stays a small part of what it holds.
SMALL_CHUNK_BYTES = 16 * 2**10
# Chosen chunks below this are refused: the cache would hold over four times more bookkeeping than pixels.
MIN_CHUNK_BYTES = ENTRY_OVERHEAD_BYTES // 4
# Default chunks take at most this share of the chunk cache, so that it holds several at once.
DEFAULT_CHUNKS_PER_CACHE = 8
# Default chunks pad an axis by at most the source's own grid of storage units plus this share of its extent.
PADDING_MARGIN = 1 / 16
# A default chunk side may be this many times PLANE_CHUNK_SIDE when that pads less (a 600x515 image with
# 128x128 tiles is served as one 600x515 chunk, not four 512x512 ones).
LONGEST_SIDE_RATIO = math.sqrt(2)


def _round_up(value: int, unit: int) -> int:
    return math.ceil(value / unit) * unit


def _shown(size: float) -> str:
    """A size for a message."""
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 2**10:.1f} KiB"


def _size_option(size: int) -> str:
    """A size for a message, rounded up to whole KiB or MiB: a value --cache-size takes as it is."""
    return f"{math.ceil(size / 2**20)}MiB" if size >= 2**20 else f"{math.ceil(size / 2**10)}KiB"


def cache_room(chunk_bytes: int) -> int:
    """The chunk cache a chunk needs while it is read: room for its pixels and its encoded file at once (for
    raw output, for two chunks read side by side). A chunk the cache cannot keep is made again for every read
    request (FUSE reads 1 MiB at a time)."""
    return 2 * (chunk_bytes + ENTRY_OVERHEAD_BYTES)


def default_chunk_limit(chunk_cache_bytes: int) -> int:
    """The largest default chunk for a chunk cache of ``chunk_cache_bytes``."""
    return min(MAX_CHUNK_BYTES, chunk_cache_bytes // DEFAULT_CHUNKS_PER_CACHE)


def _axis_chunk(extent: int, unit: int, target: int, largest: int) -> int:
    """The default chunk length along one axis: the whole multiple of ``unit`` (the source's storage unit)
    nearest to ``target`` (by ratio; the smaller on a tie) and at most ``largest`` (or one unit), among those
    whose grid pads the axis by no more than the storage units' own grid plus PADDING_MARGIN of the extent.
    Edge chunks are served full size, and a copy of the mount copies them whole: 512-row chunks of a 600-row
    image would serve 1024 rows. A chunk longer than the axis is cut to it (it pads nothing)."""
    allowed = _round_up(extent, unit) + extent * PADDING_MARGIN
    best = unit
    # Multiples past the extent pad more than the one that reaches it: stop there.
    for multiple in range(2, min(largest // unit, math.ceil(extent / unit)) + 1):
        size = multiple * unit
        if _round_up(extent, size) <= allowed and abs(math.log(size / target)) < abs(math.log(best / target)):
            best = size
    return min(best, extent)


def _plane_chunks(level: Level, itemsize: int, max_bytes: int) -> tuple[int, ...]:
    """A chunk shape that is a whole multiple of the source's storage unit on y and x (so no tile or strip is
    decoded for two chunks), one storage unit deep on the outer axes (one plane, or the interleaved samples
    on c), about PLANE_CHUNK_SIDE on a side, with little padding (see _axis_chunk) and at most ``max_bytes``
    where the storage unit allows."""
    *outer_units, unit_y, unit_x = level.storage_unit
    *outer_shape, height, width = level.shape
    outer = tuple(min(unit, size) for unit, size in zip(outer_units, outer_shape, strict=True))
    plane_bytes = math.prod(outer) * itemsize
    side = PLANE_CHUNK_SIDE
    while side > 1 and plane_bytes * side * side > max_bytes:  # a small cache
        side //= 2
    if plane_bytes * unit_y * unit_x > max_bytes:
        # The storage unit itself is too big to serve as one chunk (e.g. one huge strip): give up alignment;
        # the source keeps such decoded blocks in its own cache instead.
        unit_y = unit_x = 1
    max_pixels = max_bytes // plane_bytes
    if unit_x >= width and unit_x > side:
        # Full-width strips: keep the full width and stack bands up to a comfortable size.
        band_bytes = min(STRIP_BAND_BYTES, max_bytes)
        rows = max(1, band_bytes // (plane_bytes * width * unit_y)) * unit_y
        return (*outer, _axis_chunk(height, unit_y, rows, rows), width)
    # A side may grow up to LONGEST_SIDE_RATIO times the target for less padding, within max_bytes.
    longest = int(side * LONGEST_SIDE_RATIO)
    chunk_y = _axis_chunk(height, unit_y, side, max(unit_y, min(longest, max_pixels // unit_x)))
    chunk_x = _axis_chunk(width, unit_x, side, max(unit_x, min(longest, max_pixels // chunk_y)))
    return (*outer, chunk_y, chunk_x)


def _stack_small_planes(
    axes: str, shape: tuple[int, ...], chunks: tuple[int, ...], itemsize: int
) -> tuple[int, ...]:
    """Chunks of tiny planes (a stack of 100,000 small pages) deepened along z, then t, towards
    SMALL_CHUNK_BYTES; by whole multiples, so they stay aligned to the storage unit, and with little padding
    (see _axis_chunk)."""
    stacked = list(chunks)
    for axis in "zt":
        chunk_bytes = math.prod(stacked) * itemsize
        if chunk_bytes >= SMALL_CHUNK_BYTES:
            break
        if axis in axes:
            position = axes.index(axis)
            depth = stacked[position] * math.ceil(SMALL_CHUNK_BYTES / chunk_bytes)
            stacked[position] = _axis_chunk(shape[position], stacked[position], depth, depth)
    return tuple(stacked)


def default_chunks(
    axes: str, level: Level, itemsize: int, max_bytes: int = MAX_CHUNK_BYTES
) -> tuple[int, ...]:
    """The chunk shape served unless ``--chunks`` says otherwise (_plane_chunks, then _stack_small_planes)."""
    return _stack_small_planes(axes, level.shape, _plane_chunks(level, itemsize, max_bytes), itemsize)


def resolve_chunks(
    axes: str, level: Level, itemsize: int, requested: tuple[int, ...] | None, max_default_bytes: int
) -> tuple[int, ...]:
    """The user's ``--chunks`` (right-aligned to the axes, clamped to the shape; the axes it leaves out one
    storage unit deep) over the default, whose chunks are at most ``max_default_bytes`` where the source's
    storage allows."""
    if requested is None:
        return default_chunks(axes, level, itemsize, max_default_bytes)
    if len(requested) > len(axes):
        raise ZarrfsError(
            f"--chunks has {len(requested)} values but the image has {len(axes)} axes ({','.join(axes)})"
        )
    plane = _plane_chunks(level, itemsize, max_default_bytes)
    merged = plane[: len(axes) - len(requested)] + requested
    clamped = tuple(min(size, extent) for size, extent in zip(merged, level.shape, strict=True))
    chunk_bytes = math.prod(clamped) * itemsize
    text = ",".join(map(str, requested))
    if chunk_bytes > 2**31 - 1:
        raise ZarrfsError(f"--chunks {text} makes chunks larger than 2 GiB")
    if chunk_bytes < MIN_CHUNK_BYTES and clamped != level.shape:
        raise ZarrfsError(
            f"--chunks {text} makes {chunk_bytes}-byte chunks: the cache would hold more bookkeeping "
            f"(about {ENTRY_OVERHEAD_BYTES} bytes per chunk) than pixels; choose chunks of at least "
            f"{MIN_CHUNK_BYTES} bytes"
        )
    return clamped


def check_cache_room(
    chunk_bytes: int, cache_bytes: int, chunk_share: Callable[[int], int], chosen: bool
) -> None:
    """Refuse chunks of ``chunk_bytes`` (the largest served) that the chunk cache, ``chunk_share`` of the
    ``--cache-size`` ``cache_bytes``, cannot keep while they are read: every read request would make the
    chunk again (a 128 MiB chunk read in 1 MiB requests took 24 times longer)."""
    room = cache_room(chunk_bytes)
    if room <= chunk_share(cache_bytes):
        return
    needed = room
    while chunk_share(needed) < room:
        needed += room - chunk_share(needed)
    advice = f"raise --cache-size to at least {_size_option(needed)}"
    if chosen:
        advice += " or choose smaller --chunks"
    raise ZarrfsError(
        f"chunks of {_shown(chunk_bytes)} need {_shown(room)} of chunk cache to be kept while they are read, "
        f"but --cache-size {_shown(cache_bytes)} leaves {_shown(chunk_share(cache_bytes))} for chunks: "
        f"{advice}"
    )
