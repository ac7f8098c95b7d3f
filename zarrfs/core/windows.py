"""Display windows (``omero.channels[].window``) from the data: percentiles of a small, fixed sample of stored
pixels, taken when the image is opened.

A window spanning the data type opens 12-bit data stored in uint16 nearly black, and clips a float image
whose values lie outside 0..1. Viewers (napari, Fiji, MoBIE) start from ``start``/``end``, so those are the
0.1 and 99.9 percentiles of each channel; ``min``/``max`` are the range a slider may span: the data type's
for integers, the sample's own for floats.

The sample is read from the coarsest stored level (a pyramid's overview, else level 0) in whole storage units
(tiles, strips, planes), so that no unit is decoded for nothing, and is fixed by the metadata alone: a few
evenly spaced planes, and evenly spaced units within them, of at most SAMPLE_BYTES decoded pixels. Opening
stays fast (a sparse 50 GB BigTIFF included), and the windows are the same on every open. Where one storage
unit alone is larger than the sample, or reading it fails or takes longer than SAMPLE_SECONDS (a stalled
network file system), every channel keeps the data type's range.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from zarrfs.core.options import human_bytes
from zarrfs.sources import ImageSource

log = logging.getLogger(__name__)

SAMPLE_BYTES = 8 * 2**20
SAMPLE_SECONDS = 0.5
PERCENTILES = (0.1, 99.9)
# Percentiles are taken over at most this many of a channel's sampled values (the 0.1 percentile then still
# rests on 262 values).
PERCENTILE_VALUES = 2**18
# Planes the sample spreads over when it cannot take whole planes (of a z stack or a time series).
SAMPLE_PLANES = 4
# The sample reads blocks of whole storage units of about this size: few reads (at most SAMPLE_BYTES divided
# by this), so that the per-read cost of one-row strips or tiny pages does not eat the time budget.
SAMPLE_BLOCK_BYTES = 256 * 2**10


@dataclass(frozen=True)
class Window:
    """One channel's display window, as OME-NGFF's omero metadata has it."""

    min: float
    max: float
    start: float
    end: float

    def as_json(self) -> dict[str, float]:
        return {"min": self.min, "max": self.max, "start": self.start, "end": self.end}


@dataclass(frozen=True)
class DisplayWindows:
    """A window per channel (one for an image without a c axis), and how they were found."""

    channels: tuple[Window, ...]
    basis: str  # for `zarrfs info`


def dtype_window(dtype: np.dtype) -> Window:
    """The data type's range (floats and others: 0 to 1, the usual normalised intensity)."""
    if np.issubdtype(dtype, np.integer):
        limits = np.iinfo(dtype)
        low, high = float(limits.min), float(limits.max)
    else:
        low, high = 0.0, 1.0
    return Window(low, high, low, high)


def display_windows(source: ImageSource) -> DisplayWindows:
    """Windows from a sample of the source's coarsest stored level; the data type's range where no sample can
    be had within SAMPLE_BYTES and SAMPLE_SECONDS, or for types without an order (booleans, complex)."""
    info = source.info
    count = info.levels[0].shape[info.axes.index("c")] if "c" in info.axes else 1
    fallback = dtype_window(info.dtype)

    def dtype_range(why: str) -> DisplayWindows:
        return DisplayWindows((fallback,) * count, f"the data type's range ({why})")

    if info.dtype.kind not in "uif":
        return dtype_range("its values have no order")
    level = len(info.levels) - 1
    stored = info.levels[level]
    regions = _sample_regions(info.axes, stored.shape, stored.storage_unit, info.dtype.itemsize)
    if regions is None:
        unit_bytes = math.prod(min(u, s) for u, s in zip(stored.storage_unit, stored.shape, strict=True))
        return dtype_range(
            f"a storage unit of {human_bytes(unit_bytes * info.dtype.itemsize)} is over budget"
        )
    values: list[list[np.ndarray]] = [[] for _ in range(count)]
    started = time.monotonic()
    read = 0
    try:
        for region in regions:
            pixels = source.read_region(level, region)
            read += pixels.nbytes
            for channel, first in _channels(info.axes, region):
                part = pixels.take(channel - first, axis=info.axes.index("c")) if "c" in info.axes else pixels
                values[channel].append(part.ravel())
            if time.monotonic() - started > SAMPLE_SECONDS:
                return dtype_range(f"reading the sample took over {SAMPLE_SECONDS:g} s")
    except Exception as error:  # windows are a convenience: a bad tile fails when it is read, not here
        log.debug("display windows: sample not read: %s: %s", type(error).__name__, error)
        return dtype_range(f"the sample could not be read: {error}")
    windows = tuple(_window(np.concatenate(parts), info.dtype, fallback) for parts in values)
    where = "the coarsest stored level" if level else "level 0"
    whole = read >= math.prod(stored.shape) * info.dtype.itemsize
    sample = "all of it" if whole else f"{human_bytes(read)} sampled in {len(regions)} reads"
    low, high = PERCENTILES
    return DisplayWindows(windows, f"{low:g} and {high:g} percentiles of {where} ({sample})")


def _channels(axes: str, region: tuple[slice, ...]) -> Iterator[tuple[int, int]]:
    """Each channel a region holds, with the region's first channel."""
    if "c" not in axes:
        yield 0, 0
        return
    part = region[axes.index("c")]
    for channel in range(part.start, part.stop):
        yield channel, part.start


def _spread(extent: int, count: int) -> list[int]:
    """``count`` (at most ``extent``) evenly spaced positions in ``range(extent)``, centred in equal parts."""
    count = min(count, extent)
    return [(2 * i + 1) * extent // (2 * count) for i in range(count)]


def _sample_regions(
    axes: str, shape: tuple[int, ...], unit: Sequence[int], itemsize: int
) -> list[tuple[slice, ...]] | None:
    """The regions the sample reads: the whole level when it fits SAMPLE_BYTES; else, for each group of
    channels stored together, evenly spaced whole planes when a plane fits the group's share, or evenly
    spaced blocks in SAMPLE_PLANES evenly spaced planes. A block is whole storage units, as many as make
    SAMPLE_BLOCK_BYTES (one-row strips or tiny pages would otherwise cost a read each). None when one
    storage unit alone is over the budget."""
    block = [min(u, s) for u, s in zip(unit, shape, strict=True)]
    if math.prod(block) * itemsize > SAMPLE_BYTES:
        return None
    whole = tuple(slice(0, extent) for extent in shape)
    if math.prod(shape) * itemsize <= SAMPLE_BYTES:
        return [whole]
    c = axes.index("c") if "c" in axes else None
    outer = [i for i, axis in enumerate(axes) if axis in "tz"]
    y, x = len(axes) - 2, len(axes) - 1
    for axis in (y, x, *reversed(outer)):  # rows first, then columns, then planes
        block_bytes = math.prod(block) * itemsize
        if block_bytes >= SAMPLE_BLOCK_BYTES:
            break
        block[axis] = min(shape[axis], block[axis] * math.ceil(SAMPLE_BLOCK_BYTES / block_bytes))
    block_bytes = math.prod(block) * itemsize
    grid = [math.ceil(extent / size) for extent, size in zip(shape, block, strict=True)]
    groups = grid[c] if c is not None else 1
    per_group = SAMPLE_BYTES // block_bytes // groups
    if per_group == 0:
        return None
    plane_blocks = grid[y] * grid[x]
    planes = math.prod(grid[i] for i in outer)
    regions = []
    for group in range(groups):
        rows: list[int | None]
        columns: list[int | None]
        if per_group >= plane_blocks:
            chosen_planes, rows, columns = _spread(planes, per_group // plane_blocks), [None], [None]
        else:
            chosen_planes = _spread(planes, min(SAMPLE_PLANES, per_group))
            in_plane = per_group // len(chosen_planes)
            # As many rows as columns of blocks, in proportion to the grid.
            row_count = max(1, min(grid[y], in_plane, round(math.sqrt(in_plane * grid[y] / grid[x]))))
            rows = list(_spread(grid[y], row_count))
            columns = list(_spread(grid[x], in_plane // len(rows)))
        for plane in chosen_planes:
            position = np.unravel_index(plane, [grid[i] for i in outer]) if outer else ()
            for row in rows:
                for column in columns:
                    region = list(whole)
                    if c is not None:
                        region[c] = _block_slice(group, block[c], shape[c])
                    for axis, index in zip(outer, position, strict=True):
                        region[axis] = _block_slice(int(index), block[axis], shape[axis])
                    if row is not None and column is not None:
                        region[y] = _block_slice(row, block[y], shape[y])
                        region[x] = _block_slice(column, block[x], shape[x])
                    regions.append(tuple(region))
    return regions


def _block_slice(index: int, size: int, extent: int) -> slice:
    return slice(index * size, min((index + 1) * size, extent))


def _window(values: np.ndarray, dtype: np.dtype, fallback: Window) -> Window:
    """The window of one channel's sampled values: start/end their percentiles (by the inverted CDF: values
    that occur), min/max the data type's range for integers and the values' range for floats."""
    if dtype.kind == "f":
        values = values[np.isfinite(values)]
        if values.size == 0:
            return fallback
        low, high = float(values.min()), float(values.max())
    else:
        low, high = fallback.min, fallback.max
    start, end = _percentiles(values)
    if start == end:  # a constant sample: a window one unit wide, which viewers can show
        if dtype.kind == "f" or end < high:
            end += 1
        else:
            start -= 1
        high = max(high, end)
    return Window(low, high, start, end)


def _percentiles(values: np.ndarray) -> tuple[float, float]:
    if values.size > PERCENTILE_VALUES:
        # A fixed pseudo-random subset (the same on every open): a sort of millions of values would take most
        # of the time budget, and regular strides could alias with the rows.
        values = values[np.random.default_rng(0).integers(0, values.size, PERCENTILE_VALUES)]
    low, high = np.percentile(values, PERCENTILES, method="inverted_cdf")
    return float(low), float(high)
