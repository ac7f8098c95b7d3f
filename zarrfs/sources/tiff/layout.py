"""Where the pixels of a canonical ``tczyx`` index live in a TIFF series: which page (in series order),
which separate sample plane, which depth slice (volumetric tiles), which rows and columns, which interleaved
sample; and the block a reader decodes in one piece."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tifffile

from zarrfs.errors import SourceError
from zarrfs.sources.base import CANONICAL_AXES

# tifffile axis codes with a fixed canonical meaning; all others (I, Q, P, R, ...) are page sequences.
_NAMED_AXES = {"T": "t", "C": "c", "S": "c", "Z": "z", "Y": "y", "X": "x"}

# Where one series dimension lives in the file, in the order of tifffile's (pages, *normalized page shape).
_ROLES = ("page", "separate", "depth", "length", "width", "contig")
# The column of each role that selects a whole plane in the (page, separate, depth, contig) plane targets.
_ROLE_COLUMN = {"page": 0, "separate": 1, "depth": 2, "contig": 3}


class _LayoutError(Exception):
    """The series shape cannot be expressed as pages of the keyframe's shape."""


@dataclass(frozen=True)
class AxisMap:
    """How the dimensions of a series become canonical axes."""

    kept: tuple[bool, ...]  # per series dimension: part of the canonical view (size-1 ones are dropped)
    letters: tuple[str, ...]  # the canonical axis of each kept dimension
    axes: str  # the canonical axes present, in canonical order
    sources: dict[str, str]  # canonical axis -> the tifffile axis codes merged into it

    @classmethod
    def of(cls, series: tifffile.TiffPageSeries, path: str) -> AxisMap:
        shape, codes = series.get_shape(False), series.get_axes(False)
        # Like tifffile's default view: drop size-1 dimensions, except the image plane itself.
        kept = tuple(size > 1 or code in "YX" for size, code in zip(shape, codes, strict=True))
        kept_codes = "".join(code for code, keep in zip(codes, kept, strict=True) if keep)
        letters = _canonical_letters(kept_codes, path)
        axes = "".join(letter for letter in CANONICAL_AXES if letter in letters)
        sources = {
            letter: "".join(
                code for code, mapped in zip(kept_codes, letters, strict=True) if mapped == letter
            )
            for letter in axes
        }
        return cls(kept, tuple(letters), axes, sources)


def _canonical_letters(codes: str, path: str) -> list[str]:
    """The canonical axis of each tifffile axis code: named axes first, page sequences then take z, then t."""
    letters: list[str | None] = []
    for code in codes:
        letter = _NAMED_AXES.get(code)
        if letter is not None and (letter == "c" or letter not in letters):
            letters.append(letter)
        else:
            letters.append(None)
    for position, letter in enumerate(letters):
        if letter is None:
            free = next((candidate for candidate in "zt" if candidate not in letters), None)
            if free is None:
                raise SourceError(
                    f"cannot map TIFF axes {codes} to OME-NGFF axes t,c,z,y,x (too many dimensions): {path}"
                )
            letters[position] = free
    return [letter for letter in letters if letter is not None]


@dataclass(frozen=True)
class SegmentGrid:
    """The tiles or strips of one page, in tifffile's normalized page shape (separate, depth, length, width,
    contig) and segment numbering."""

    separate: int
    depth: int
    length: int
    width: int
    contig: int
    segment_depth: int
    segment_length: int
    segment_width: int
    tiled: bool

    @classmethod
    def of(cls, keyframe: tifffile.TiffPage) -> SegmentGrid:
        separate, depth, length, width, contig = keyframe.shaped
        if keyframe.is_tiled:
            segment = (keyframe.tiledepth, keyframe.tilelength, keyframe.tilewidth)
        else:
            segment = (1, min(keyframe.rowsperstrip, length) or length, width)
        return cls(separate, depth, length, width, contig, *segment, tiled=keyframe.is_tiled)

    @property
    def depth_segments(self) -> int:
        return math.ceil(self.depth / self.segment_depth)

    @property
    def length_segments(self) -> int:
        return math.ceil(self.length / self.segment_length)

    @property
    def width_segments(self) -> int:
        return math.ceil(self.width / self.segment_width)

    @property
    def count(self) -> int:
        """How many tiles or strips one page stores."""
        return self.separate * self.depth_segments * self.length_segments * self.width_segments

    def segment_index(self, separate: int, depth_block: int, row_block: int, column_block: int) -> int:
        blocks = separate * self.depth_segments + depth_block
        blocks = blocks * self.length_segments + row_block
        return blocks * self.width_segments + column_block


@dataclass(frozen=True)
class StoredDim:
    """One series dimension that is part of a canonical axis: its size, where it is stored, and for ``page``
    dimensions how many pages one step along it skips."""

    size: int
    role: str
    stride: int = 1


@dataclass(frozen=True)
class LevelPlan:
    shape: tuple[int, ...]  # canonical
    outer_dims: tuple[tuple[StoredDim, ...], ...]  # per canonical axis before y, x; major dimension first
    grid: SegmentGrid
    pages: int


def plan_level(series: tifffile.TiffPageSeries, axis_map: AxisMap, path: str) -> LevelPlan:
    shape = _series_shape(series, path)
    axes = series.get_axes(False)
    keyframe = series.keyframe
    grid = SegmentGrid.of(keyframe)
    page_size = math.prod(keyframe.shaped)
    pages, leftover = divmod(math.prod(shape), page_size)
    try:
        if leftover:
            raise _LayoutError
        roles = _assign_roles(shape, pages, keyframe.shaped)
    except _LayoutError:
        raise SourceError(
            f"unsupported TIFF layout: series shape {shape} ({axes}) is not a stack of pages of shape "
            f"{keyframe.shaped}: {path}"
        ) from None
    strides = _page_strides(shape, roles)
    dims: dict[str, list[StoredDim]] = {letter: [] for letter in axis_map.letters}
    kept_positions = [position for position, keep in enumerate(axis_map.kept) if keep]
    for letter, position in zip(axis_map.letters, kept_positions, strict=True):
        role = roles[position] or "page"  # a kept size-1 dimension: always index 0, moves nothing
        dims[letter].append(StoredDim(shape[position], role, strides[position] if role == "page" else 1))
    if not (_is_stored_as(dims["y"], "length") and _is_stored_as(dims["x"], "width")):
        raise SourceError(
            f"unsupported TIFF layout: Y and X of series {axes} are not page rows and columns: {path}"
        )
    outer = tuple(tuple(dims[letter]) for letter in axis_map.axes[:-2])
    canonical_shape = (
        *(math.prod(dim.size for dim in axis_dims) for axis_dims in outer),
        int(grid.length),
        int(grid.width),
    )
    return LevelPlan(canonical_shape, outer, grid, pages)


def _series_shape(series: tifffile.TiffPageSeries, path: str) -> tuple[int, ...]:
    """The series shape as Python ints: the core computes chunk grids and pyramids from it."""
    shape = series.get_shape(False)
    if not all(isinstance(size, int | np.integer) and size >= 0 for size in shape):
        raise SourceError(f"invalid TIFF series shape {shape}: not whole numbers: {path}")
    return tuple(int(size) for size in shape)


def _assign_roles(shape: Sequence[int], pages: int, shaped: Sequence[int]) -> list[str | None]:
    """Where each series dimension is stored, matching dimensions from the right against (pages, *shaped) the
    way tifffile reshapes decoded pages into the series shape. Size-1 dimensions get None."""
    remaining = [pages, *shaped]
    roles: list[str | None] = [None] * len(shape)
    target = len(remaining) - 1
    for position in reversed(range(len(shape))):
        size = shape[position]
        if size == 1:
            continue
        while target >= 0 and remaining[target] == 1:
            target -= 1
        if target < 0 or remaining[target] % size:
            raise _LayoutError
        remaining[target] //= size
        roles[position] = _ROLES[target]
    within_page = [role for role in roles if role not in (None, "page")]
    if any(size != 1 for size in remaining) or len(within_page) != len(set(within_page)):
        raise _LayoutError
    return roles


def _page_strides(shape: Sequence[int], roles: Sequence[str | None]) -> list[int]:
    strides = [0] * len(shape)
    stride = 1
    for position in reversed(range(len(shape))):
        if roles[position] == "page":
            strides[position] = stride
            stride *= shape[position]
    return strides


def _is_stored_as(dims: Sequence[StoredDim], role: str) -> bool:
    """True for the single series dimension stored as ``role`` (or a size-1 one, which needs no storage)."""
    return len(dims) == 1 and (dims[0].role == role or dims[0].size == 1)


def plane_targets(outer_dims: Sequence[Sequence[StoredDim]], outer_region: Sequence[slice]) -> np.ndarray:
    """(page, separate, depth, contig) of every output plane, in C order of the region's outer axes."""
    targets = np.zeros((1, 4), np.int64)
    for dims, axis_slice in zip(outer_dims, outer_region, strict=True):
        axis = _axis_targets(dims, axis_slice.start, axis_slice.stop)
        targets = (targets[:, None, :] + axis[None, :, :]).reshape(-1, 4)
    return targets


def _axis_targets(dims: Sequence[StoredDim], start: int, stop: int) -> np.ndarray:
    """For canonical indices start..stop-1 of one axis: their (page, separate, depth, contig) parts."""
    index = np.arange(start, stop, dtype=np.int64)
    targets = np.zeros((index.size, 4), np.int64)
    for dim in reversed(dims):
        index, dim_index = np.divmod(index, dim.size)
        targets[:, _ROLE_COLUMN[dim.role]] += dim_index * dim.stride
    return targets


def storage_unit(plan: LevelPlan, reads_rows: bool) -> tuple[int, ...]:
    """The block decoded in one piece, per canonical axis: see ``Level.storage_unit``."""
    grid = plan.grid
    outer = []
    for dims in plan.outer_dims:
        minor = dims[-1].role
        outer.append(grid.contig if minor == "contig" else grid.segment_depth if minor == "depth" else 1)
    if reads_rows:  # uncompressed rows: any band of rows is read without waste
        return (*outer, 1, grid.width)
    return (*outer, min(grid.segment_length, grid.length), min(grid.segment_width, grid.width))
