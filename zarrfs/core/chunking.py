"""Choosing the chunk shape: aligned to what the source decodes in one piece, unless the user decides."""

from __future__ import annotations

import math

from zarrfs.errors import ZarrfsError
from zarrfs.sources import Level

# Planes are chunked to at least this many pixels per side: the size most NGFF viewers and tools expect.
PLANE_CHUNK_SIDE = 512
# A chunk above this would make every read of it slow and memory-hungry.
MAX_CHUNK_BYTES = 16 * 2**20
# Full-width strip bands are grown towards this size, a good FUSE request size.
STRIP_BAND_BYTES = 4 * 2**20


def _round_up(value: int, unit: int) -> int:
    return math.ceil(value / unit) * unit


def default_chunks(axes: str, level: Level, itemsize: int) -> tuple[int, ...]:
    """A chunk shape that is a whole multiple of the source's storage unit on y and x (so no tile or strip is
    decoded for two chunks), one plane deep on t and z, and covering interleaved samples on c."""
    *outer_units, unit_y, unit_x = level.storage_unit
    *outer_shape, height, width = level.shape
    outer = tuple(min(unit, size) for unit, size in zip(outer_units, outer_shape, strict=True))
    plane_bytes = math.prod(outer) * itemsize
    if plane_bytes * unit_y * unit_x > MAX_CHUNK_BYTES:
        # The storage unit itself is too big to serve as one chunk (e.g. one huge strip): give up alignment;
        # the source keeps such decoded blocks in its own cache instead.
        unit_y = unit_x = 1
    if unit_x >= width and unit_x > PLANE_CHUNK_SIDE:
        # Full-width strips: keep the full width and stack bands up to a comfortable size.
        rows = max(1, STRIP_BAND_BYTES // (plane_bytes * width * unit_y)) * unit_y
        chunk_y = min(rows, _round_up(height, unit_y))
        chunk_x = width
    else:
        chunk_y = _round_up(PLANE_CHUNK_SIDE, unit_y)
        chunk_x = _round_up(PLANE_CHUNK_SIDE, unit_x)
    return (*outer, min(chunk_y, height), min(chunk_x, width))


def resolve_chunks(
    axes: str, level: Level, itemsize: int, requested: tuple[int, ...] | None
) -> tuple[int, ...]:
    """The user's ``--chunks`` (right-aligned to the axes, clamped to the shape) over the default."""
    chunks = default_chunks(axes, level, itemsize)
    if requested is None:
        return chunks
    if len(requested) > len(axes):
        raise ZarrfsError(
            f"--chunks has {len(requested)} values but the image has {len(axes)} axes ({','.join(axes)})"
        )
    merged = chunks[: len(axes) - len(requested)] + requested
    clamped = tuple(min(size, extent) for size, extent in zip(merged, level.shape, strict=True))
    if math.prod(clamped) * itemsize > 2**31 - 1:
        raise ZarrfsError(f"--chunks {','.join(map(str, requested))} makes chunks larger than 2 GiB")
    return clamped
