"""TIFF, BigTIFF, OME-TIFF and ImageJ TIFF files as an image source in canonical ``tczyx`` order.

tifffile parses the file structure once, at open. Pixel reads then bypass tifffile's file handle, which
serializes every seek + read under one lock: each read is an ``os.pread`` on our own read-only descriptor
followed by the page's own decode function, so any number of threads read and decode at the same time.
"""

from __future__ import annotations

import importlib.util
import math
import os
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any
from xml.etree import ElementTree

import numpy as np
import tifffile

from zarrfs.errors import SourceError
from zarrfs.sources.base import CANONICAL_AXES, Channel, ImageSource, Level, PhysicalSize, SourceInfo
from zarrfs.units import UnitKind, udunits_name

TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF, both byte orders

# Decoded tiles or strips that more than one region needs (typically one huge strip read chunk by chunk).
DEFAULT_SEGMENT_CACHE_BYTES = 256 * 2**20

# Formats people mistake for TIFF, named in the error instead of "not a TIFF header".
_OTHER_FORMAT_SIGNATURES = {
    b"\x89PNG": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"GIF8": "GIF",
    b"PK\x03\x04": "ZIP",
    b"\x89HDF": "HDF5",
    b"ZISRAWFILE": "Zeiss CZI",
    b"%PDF": "PDF",
}

# tifffile axis codes with a fixed canonical meaning; all others (I, Q, P, R, ...) are page sequences.
_NAMED_AXES = {"T": "t", "C": "c", "S": "c", "Z": "z", "Y": "y", "X": "x"}

# Where one series dimension lives in the file: which page (in series order), which separate sample plane,
# which depth slice (volumetric tiles), or which interleaved sample.
_ROLES = ("page", "separate", "depth", "length", "width", "contig")
_ROLE_COLUMN = {"page": 0, "separate": 1, "depth": 2, "contig": 3}

_RGB_SAMPLES = (("red", "FF0000"), ("green", "00FF00"), ("blue", "0000FF"), ("alpha", None))

_OME_SIZES: tuple[tuple[str, str, str, str, UnitKind], ...] = (  # canonical axis, tifffile axis code,
    # OME Pixels attribute, its default unit, kind
    ("x", "X", "PhysicalSizeX", "µm", "space"),
    ("y", "Y", "PhysicalSizeY", "µm", "space"),
    ("z", "Z", "PhysicalSizeZ", "µm", "space"),
    ("t", "T", "TimeIncrement", "s", "time"),
)

_RESOLUTION_UNIT_MICROMETERS = {3: 1e4, 4: 1e3, 5: 1.0}  # centimeter, millimeter, micrometer (DNG)

_KIND_NAMES = {
    "ome": "OME-TIFF",
    "imagej": "ImageJ TIFF",
    "shaped": "TIFF",
    "generic": "TIFF",
    "uniform": "TIFF",
}


def is_tiff_header(header: bytes) -> bool:
    """True if ``header`` (the first bytes of a file) starts like a classic TIFF or a BigTIFF."""
    return header[:4] in TIFF_SIGNATURES


class _LayoutError(Exception):
    """The series shape cannot be expressed as pages of the keyframe's shape."""


# ----------------------------------------------------------------------------------------------------------
# Reading bytes


class _PixelFile:
    """A file opened read-only for positional reads (``os.pread`` needs no lock shared between threads)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))

    def read(self, length: int, offset: int) -> bytes:
        data = os.pread(self.fd, length, offset)
        if len(data) == length:
            return data
        parts = [data]
        received = len(data)
        while received < length:  # large reads may come back in pieces
            more = os.pread(self.fd, length - received, offset + received)
            if not more:
                raise SourceError(
                    f"file is truncated: needed bytes {offset}-{offset + length} but it ends at "
                    f"{offset + received}: {self.path}"
                )
            parts.append(more)
            received += len(more)
        return b"".join(parts)

    def read_window(self, offset: int, row_stride: int, rows: int, length: int) -> np.ndarray:
        """``length`` bytes from each of ``rows`` rows ``row_stride`` bytes apart, as uint8 (rows, length)."""
        if rows == 1 or row_stride <= 2 * length:
            # One read, wasting at most as many bytes as it keeps: cheaper than one system call per row.
            data = np.frombuffer(self.read((rows - 1) * row_stride + length, offset), np.uint8)
            return np.lib.stride_tricks.as_strided(data, (rows, length), (row_stride, 1))
        # A narrow window of wide rows: read only the window, row by row.
        parts = [self.read(length, offset + row * row_stride) for row in range(rows)]
        return np.frombuffer(b"".join(parts), np.uint8).reshape(rows, length)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class _SegmentCache:
    """Decoded segments kept for the next region that needs them, bounded in bytes, least recently used out.

    Concurrent requests for one segment decode it once. A segment larger than the whole capacity is still
    kept, alone: the alternative is decoding a huge strip again for every chunk cut from it.
    """

    def __init__(self, capacity_bytes: int) -> None:
        self._capacity = capacity_bytes
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self._size = 0
        self._in_flight: dict[Hashable, _Flight] = {}

    def get(self, key: Hashable, decode: Callable[[], np.ndarray | None]) -> np.ndarray | None:
        while True:
            with self._lock:
                cached = self._entries.get(key)
                if cached is not None:
                    self._entries.move_to_end(key)
                    return cached
                flight = self._in_flight.get(key)
                if flight is None:
                    flight = self._in_flight[key] = _Flight()
                    break
            flight.done.wait()
            if flight.succeeded:
                return flight.value
            # The decoding thread failed: try ourselves, so the error reaches this caller too.
        try:
            value = decode()
        except BaseException:
            with self._lock:
                del self._in_flight[key]
            flight.done.set()
            raise
        if value is not None:
            value.setflags(write=False)
        flight.value = value
        flight.succeeded = True
        with self._lock:
            del self._in_flight[key]
            if value is not None:
                self._insert(key, value)
        flight.done.set()
        return value

    def _insert(self, key: Hashable, value: np.ndarray) -> None:
        self._entries[key] = value
        self._size += value.nbytes
        while self._size > self._capacity and len(self._entries) > 1:
            _, evicted = self._entries.popitem(last=False)
            self._size -= evicted.nbytes

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._size = 0


class _Flight:
    __slots__ = ("done", "succeeded", "value")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.succeeded = False
        self.value: np.ndarray | None = None


# ----------------------------------------------------------------------------------------------------------
# Layout: from canonical coordinates to pages, sample planes, depth slices, rows and columns


@dataclass(frozen=True)
class _SegmentGrid:
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
    def of(cls, keyframe: tifffile.TiffPage) -> _SegmentGrid:
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

    def segment_index(self, separate: int, depth_block: int, row_block: int, column_block: int) -> int:
        blocks = separate * self.depth_segments + depth_block
        blocks = blocks * self.length_segments + row_block
        return blocks * self.width_segments + column_block


@dataclass(frozen=True)
class _StoredDim:
    """One series dimension that is part of a canonical axis: its size, where it is stored, and for ``page``
    dimensions how many pages one step along it skips."""

    size: int
    role: str
    stride: int = 1


@dataclass(frozen=True)
class _LevelPlan:
    shape: tuple[int, ...]  # canonical
    outer_dims: tuple[tuple[_StoredDim, ...], ...]  # per canonical axis before y, x; major dimension first
    grid: _SegmentGrid
    pages: int


def _canonical_letters(axes: str, path: str) -> list[str]:
    """The canonical axis of each tifffile axis code: named axes first, page sequences then take z, then t."""
    letters: list[str | None] = []
    for code in axes:
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
                    f"cannot map TIFF axes {axes} to OME-NGFF axes t,c,z,y,x (too many dimensions): {path}"
                )
            letters[position] = free
    return [letter for letter in letters if letter is not None]


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


def _plan_level(
    series: tifffile.TiffPageSeries, kept: Sequence[bool], letters: Sequence[str], path: str
) -> _LevelPlan:
    shape = series.get_shape(False)
    axes = series.get_axes(False)
    keyframe = series.keyframe
    grid = _SegmentGrid.of(keyframe)
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
    dims: dict[str, list[_StoredDim]] = {letter: [] for letter in letters}
    kept_positions = [position for position, keep in enumerate(kept) if keep]
    for letter, position in zip(letters, kept_positions, strict=True):
        role = roles[position] or "page"  # a kept size-1 dimension: always index 0, moves nothing
        dims[letter].append(_StoredDim(shape[position], role, strides[position] if role == "page" else 1))
    if not (_is_stored_as(dims["y"], "length") and _is_stored_as(dims["x"], "width")):
        raise SourceError(
            f"unsupported TIFF layout: Y and X of series {axes} are not page rows and columns: {path}"
        )
    ordered = [letter for letter in CANONICAL_AXES if letter in dims]
    outer = tuple(tuple(dims[letter]) for letter in ordered[:-2])
    canonical_shape = (
        *(math.prod(dim.size for dim in axis_dims) for axis_dims in outer),
        grid.length,
        grid.width,
    )
    return _LevelPlan(canonical_shape, outer, grid, pages)


def _is_stored_as(dims: Sequence[_StoredDim], role: str) -> bool:
    """True for the single series dimension stored as ``role`` (or a size-1 one, which needs no storage)."""
    return len(dims) == 1 and (dims[0].role == role or dims[0].size == 1)


def _axis_targets(dims: Sequence[_StoredDim], start: int, stop: int) -> np.ndarray:
    """For canonical indices start..stop-1 of one axis: their (page, separate, depth, contig) parts."""
    index = np.arange(start, stop, dtype=np.int64)
    targets = np.zeros((index.size, 4), np.int64)
    for dim in reversed(dims):
        index, dim_index = np.divmod(index, dim.size)
        targets[:, _ROLE_COLUMN[dim.role]] += dim_index * dim.stride
    return targets


def _plane_targets(outer_dims: Sequence[Sequence[_StoredDim]], outer_region: Sequence[slice]) -> np.ndarray:
    """(page, separate, depth, contig) of every output plane, in C order of the region's outer axes."""
    targets = np.zeros((1, 4), np.int64)
    for dims, axis_slice in zip(outer_dims, outer_region, strict=True):
        axis = _axis_targets(dims, axis_slice.start, axis_slice.stop)
        targets = (targets[:, None, :] + axis[None, :, :]).reshape(-1, 4)
    return targets


def _storage_unit(plan: _LevelPlan, reads_rows: bool) -> tuple[int, ...]:
    grid = plan.grid
    outer = []
    for dims in plan.outer_dims:
        minor = dims[-1].role
        outer.append(grid.contig if minor == "contig" else grid.segment_depth if minor == "depth" else 1)
    if reads_rows:  # uncompressed rows: any band of rows is read without waste
        return (*outer, 1, grid.width)
    return (*outer, min(grid.segment_length, grid.length), min(grid.segment_width, grid.width))


# ----------------------------------------------------------------------------------------------------------
# Level readers


# (plane index in the output, depth slice, interleaved sample) for each output plane one page provides
_PlaneItems = list[tuple[int, int, int]]


class _LevelReader(ABC):
    def __init__(self, plan: _LevelPlan, dtype: np.dtype, file_dtype: np.dtype, fill_value: float) -> None:
        self.plan = plan
        self.dtype = dtype  # native byte order, what read() returns
        self.file_dtype = file_dtype  # as stored, for bytes read without decoding
        self.fill_value = fill_value  # for segments a sparse file never wrote
        self.storage_unit = _storage_unit(plan, self.reads_rows)

    @property
    @abstractmethod
    def reads_rows(self) -> bool:
        """True if any run of rows is read straight from the file, without decoding a whole tile or strip."""

    def read(self, region: Sequence[slice]) -> np.ndarray:
        *outer_region, rows, columns = region
        out = np.empty(tuple(axis_slice.stop - axis_slice.start for axis_slice in region), self.dtype)
        planes = out.reshape(-1, rows.stop - rows.start, columns.stop - columns.start)
        groups: dict[tuple[int, int], _PlaneItems] = {}
        targets = _plane_targets(self.plan.outer_dims, outer_region)
        for plane, (page, separate, depth, contig) in enumerate(targets.tolist()):
            groups.setdefault((page, separate), []).append((plane, depth, contig))
        for (page, separate), items in groups.items():
            self._fill_from_page(planes, page, separate, items, rows, columns)
        return out

    @abstractmethod
    def _fill_from_page(
        self, planes: np.ndarray, page: int, separate: int, items: _PlaneItems, rows: slice, columns: slice
    ) -> None:
        """Copy rows x columns of the listed (depth, sample) planes of one page into ``planes``."""

    def _copy_row_window(
        self, planes: np.ndarray, items: _PlaneItems, window: np.ndarray, first_row: int, rows: slice
    ) -> None:
        """Paste raw bytes shaped (rows, columns * samples * itemsize) starting at image row ``first_row``."""
        pixels = window.view(self.file_dtype).reshape(window.shape[0], -1, self.plan.grid.contig)
        start = first_row - rows.start
        for plane, _, contig in items:
            planes[plane, start : start + pixels.shape[0]] = pixels[:, :, contig]


class _ContiguousLevel(_LevelReader):
    """Uncompressed pages stored back to back from ``dataoffset`` (including ImageJ stacks with a single IFD
    and tifffile files whose later IFDs are never read): every row's position is arithmetic."""

    def __init__(
        self, plan: _LevelPlan, dtype: np.dtype, file: _PixelFile, dataoffset: int, file_dtype: np.dtype
    ) -> None:
        super().__init__(plan, dtype, file_dtype, fill_value=0)
        self.file = file
        self.dataoffset = dataoffset
        grid = plan.grid
        self.row_bytes = grid.width * grid.contig * file_dtype.itemsize
        self.plane_bytes = grid.length * self.row_bytes

    @property
    def reads_rows(self) -> bool:
        return True

    def _fill_from_page(
        self, planes: np.ndarray, page: int, separate: int, items: _PlaneItems, rows: slice, columns: slice
    ) -> None:
        grid = self.plan.grid
        pixel_bytes = grid.contig * self.file_dtype.itemsize
        for depth in sorted({depth for _, depth, _ in items}):
            plane_index = (page * grid.separate + separate) * grid.depth + depth
            offset = self.dataoffset + plane_index * self.plane_bytes + rows.start * self.row_bytes
            window = self.file.read_window(
                offset + columns.start * pixel_bytes,
                self.row_bytes,
                rows.stop - rows.start,
                (columns.stop - columns.start) * pixel_bytes,
            )
            self._copy_row_window(
                planes, [item for item in items if item[1] == depth], window, rows.start, rows
            )


class _PagedLevel(_LevelReader):
    """Pages with their own tiles or strips: read and decode only the segments a region touches."""

    def __init__(
        self,
        plan: _LevelPlan,
        dtype: np.dtype,
        pages: Sequence[tifffile.TiffPage | tifffile.TiffFrame | None],
        files: dict[int, _PixelFile],
        keyframe: tifffile.TiffPage,
        file_dtype: np.dtype,
        cache: _SegmentCache,
    ) -> None:
        self.raw_strips = _stores_raw_rows(keyframe) and not keyframe.is_tiled  # before reads_rows is used
        super().__init__(plan, dtype, file_dtype, fill_value=keyframe.nodata)
        self.pages = pages
        self.files = files
        self.keyframe = keyframe
        self.cache = cache
        # Every page of a series shares the keyframe's storage properties, hence its decode function.
        self.decode = keyframe.decode
        self.jpegheader = keyframe.jpegheader

    @property
    def reads_rows(self) -> bool:
        return self.raw_strips

    def _fill_from_page(
        self, planes: np.ndarray, page: int, separate: int, items: _PlaneItems, rows: slice, columns: slice
    ) -> None:
        tiff_page = self.pages[page] if page < len(self.pages) else None
        if tiff_page is None:  # a plane the metadata announces but the file lacks
            for plane, _, _ in items:
                planes[plane] = 0
            return
        if self.raw_strips:
            self._fill_from_raw_strips(planes, tiff_page, separate, items, rows, columns)
        else:
            self._fill_from_segments(planes, tiff_page, separate, items, rows, columns)

    def _fill_from_raw_strips(
        self,
        planes: np.ndarray,
        page: tifffile.TiffPage | tifffile.TiffFrame,
        separate: int,
        items: _PlaneItems,
        rows: slice,
        columns: slice,
    ) -> None:
        grid = self.plan.grid
        file = self.files[id(page.parent)]
        pixel_bytes = grid.contig * self.file_dtype.itemsize
        row_bytes = grid.width * pixel_bytes
        for depth in sorted({depth for _, depth, _ in items}):
            depth_items = [item for item in items if item[1] == depth]
            for row_block in range(
                rows.start // grid.segment_length, (rows.stop - 1) // grid.segment_length + 1
            ):
                index = grid.segment_index(separate, depth, row_block, 0)
                strip_row = row_block * grid.segment_length
                first = max(rows.start, strip_row)
                stop = min(rows.stop, strip_row + grid.segment_length)
                offset, bytecount = page.dataoffsets[index], page.databytecounts[index]
                if offset == 0 or bytecount == 0:  # sparse file: strip never written
                    for plane, _, _ in depth_items:
                        planes[plane, first - rows.start : stop - rows.start] = self.fill_value
                    continue
                if (stop - strip_row) * row_bytes > bytecount:
                    raise SourceError(
                        f"strip {index} of page {page.index} is shorter than its rows: {file.path}"
                    )
                window = file.read_window(
                    offset + (first - strip_row) * row_bytes + columns.start * pixel_bytes,
                    row_bytes,
                    stop - first,
                    (columns.stop - columns.start) * pixel_bytes,
                )
                self._copy_row_window(planes, depth_items, window, first, rows)

    def _fill_from_segments(
        self,
        planes: np.ndarray,
        page: tifffile.TiffPage | tifffile.TiffFrame,
        separate: int,
        items: _PlaneItems,
        rows: slice,
        columns: slice,
    ) -> None:
        grid = self.plan.grid
        depths = [depth for _, depth, _ in items]
        for depth_block in range(min(depths) // grid.segment_depth, max(depths) // grid.segment_depth + 1):
            for row_block in range(
                rows.start // grid.segment_length, (rows.stop - 1) // grid.segment_length + 1
            ):
                for column_block in range(
                    columns.start // grid.segment_width, (columns.stop - 1) // grid.segment_width + 1
                ):
                    origin = (
                        depth_block * grid.segment_depth,
                        row_block * grid.segment_length,
                        column_block * grid.segment_width,
                    )
                    index = grid.segment_index(separate, depth_block, row_block, column_block)
                    segment = self._segment(
                        page, index, shared=not self._covers(origin, items, rows, columns)
                    )
                    self._paste(planes, segment, origin, items, rows, columns)

    def _covers(self, origin: tuple[int, int, int], items: _PlaneItems, rows: slice, columns: slice) -> bool:
        """True if this region uses every pixel the segment holds, so no other region will need it."""
        grid = self.plan.grid
        depth, row, column = origin
        depths = {depth for _, depth, _ in items}
        return (
            all(d in depths for d in range(depth, min(depth + grid.segment_depth, grid.depth)))
            and rows.start <= row
            and min(row + grid.segment_length, grid.length) <= rows.stop
            and columns.start <= column
            and min(column + grid.segment_width, grid.width) <= columns.stop
        )

    def _segment(
        self, page: tifffile.TiffPage | tifffile.TiffFrame, index: int, shared: bool
    ) -> np.ndarray | None:
        file = self.files[id(page.parent)]
        offset = page.dataoffsets[index]
        if not shared:
            return self._decode_segment(file, page, index)
        return self.cache.get((file.fd, offset), lambda: self._decode_segment(file, page, index))

    def _decode_segment(
        self, file: _PixelFile, page: tifffile.TiffPage | tifffile.TiffFrame, index: int
    ) -> np.ndarray | None:
        offset, bytecount = page.dataoffsets[index], page.databytecounts[index]
        if offset == 0 or bytecount == 0:  # sparse file: segment never written
            return None
        data = file.read(bytecount, offset)
        jpegtables = page.jpegtables if page.jpegtables is not None else self.keyframe.jpegtables
        try:
            segment, _, _ = self.decode(data, index, jpegtables=jpegtables, jpegheader=self.jpegheader)
        except Exception as error:
            kind = "tile" if self.plan.grid.tiled else "strip"
            raise SourceError(
                f"cannot decode {kind} {index} of page {page.index} ({_one_line(error)}): {file.path}"
            ) from error
        return segment

    def _paste(
        self,
        planes: np.ndarray,
        segment: np.ndarray | None,
        origin: tuple[int, int, int],
        items: _PlaneItems,
        rows: slice,
        columns: slice,
    ) -> None:
        grid = self.plan.grid
        depth0, row0, column0 = origin
        if segment is None:
            depth_extent, row_extent, column_extent = (
                grid.segment_depth,
                grid.segment_length,
                grid.segment_width,
            )
        else:
            depth_extent, row_extent, column_extent = segment.shape[:3]
        first_row, stop_row = max(rows.start, row0), min(rows.stop, row0 + row_extent)
        first_column, stop_column = max(columns.start, column0), min(columns.stop, column0 + column_extent)
        target_rows = slice(first_row - rows.start, stop_row - rows.start)
        target_columns = slice(first_column - columns.start, stop_column - columns.start)
        for plane, depth, contig in items:
            if not depth0 <= depth < depth0 + depth_extent:
                continue
            if segment is None:
                planes[plane, target_rows, target_columns] = self.fill_value
            else:
                planes[plane, target_rows, target_columns] = segment[
                    depth - depth0,
                    first_row - row0 : stop_row - row0,
                    first_column - column0 : stop_column - column0,
                    contig,
                ]


def _stores_raw_rows(keyframe: tifffile.TiffPage) -> bool:
    """Samples are stored as plain native-size numbers, so any run of rows can be read without decoding."""
    return (
        keyframe.compression == 1
        and keyframe.predictor == 1
        and keyframe.fillorder == 1
        and keyframe.bitspersample in (8, 16, 32, 64)
        and keyframe.sampleformat != 5
        and not keyframe.is_subsampled
        and keyframe.dtype is not None
    )


# ----------------------------------------------------------------------------------------------------------
# Opening


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    message = text[0] if text else type(error).__name__
    return message if len(message) <= 160 else message[:157] + "..."


def _describe_foreign_header(header: bytes) -> str:
    for signature, name in _OTHER_FORMAT_SIGNATURES.items():
        if header.startswith(signature):
            return f"this is a {name} file"
    return "no TIFF header"


def _open_tifffile(path: str) -> tifffile.TiffFile:
    try:
        with open(path, "rb") as handle:
            header = handle.read(16)
    except OSError as error:
        raise SourceError(f"cannot read TIFF file ({error.strerror}): {path}") from None
    if not header:
        raise SourceError(f"not a valid TIFF file (file is empty): {path}")
    if not is_tiff_header(header):
        raise SourceError(f"not a valid TIFF file ({_describe_foreign_header(header)}): {path}")
    tiff = None
    try:
        tiff = tifffile.TiffFile(path)
        tiff.series  # noqa: B018 - parses the series structure now, so failures surface here
    except Exception as error:
        if tiff is not None:
            tiff.close()
        raise SourceError(f"not a valid TIFF file ({_one_line(error)}): {path}") from None
    return tiff


def _select_series(tiff: tifffile.TiffFile, index: int, path: str) -> tifffile.TiffPageSeries:
    count = len(tiff.series)
    if count == 0:
        raise SourceError(f"not a valid TIFF file (it contains no images): {path}")
    if not 0 <= index < count:
        available = "only series 0" if count == 1 else f"series 0-{count - 1}"
        raise SourceError(f"series {index} does not exist: the file has {count} series ({available}): {path}")
    return tiff.series[index]


def _compression_name(keyframe: tifffile.TiffPage) -> str:
    if keyframe.compression == 1:
        return "uncompressed"
    try:
        return tifffile.COMPRESSION(keyframe.compression).name
    except ValueError:
        return f"compression {keyframe.compression}"


def _decoder_missing(compression: int) -> bool:
    """True if the codec for ``compression`` is a placeholder that raises ImportError when called.

    Without imagecodecs, tifffile substitutes pure-Python codecs whose module may be missing (its zstd needs
    Python 3.14); imagecodecs builds lacking a codec provide stubs. Both only fail once called: empty input
    tells them apart from real decoders, which reject it with an ordinary error.
    """
    try:
        tifffile.TIFF.DECOMPRESSORS[compression](b"")
    except ImportError:
        return True
    except Exception:  # a real decoder refusing empty input
        return False
    return False


def _missing_codec_error(what: str, path: str) -> SourceError:
    if importlib.util.find_spec("imagecodecs") is None:
        return SourceError(f"cannot decode {what}: install imagecodecs (pip install imagecodecs): {path}")
    return SourceError(f"cannot decode {what}: the installed imagecodecs lacks this codec: {path}")


def _check_decodable(keyframe: tifffile.TiffPage, path: str) -> None:
    """Fail at open, not at the first chunk, when tifffile cannot decode this kind of page.

    tifffile resolves codecs when building a page's decode function and, if one is unknown, returns a function
    that raises on every call; calling it for an empty segment touches no pixel data.
    """
    what = f"{_compression_name(keyframe)} compression"
    try:
        keyframe.decode(None, 0)
    except Exception as error:
        reason = _one_line(error)
        if "imagecodecs" in reason:
            if "PREDICTOR" in reason:
                what = f"{tifffile.PREDICTOR(keyframe.predictor).name} predictor"
            raise _missing_codec_error(what, path) from None
        if "COMPRESSION" in reason:
            raise SourceError(f"cannot decode {what}: tifffile does not support it: {path}") from None
        raise SourceError(f"cannot decode this TIFF ({reason}): {path}") from None
    if keyframe.compression != 1 and _decoder_missing(keyframe.compression):
        raise _missing_codec_error(what, path)


def _data_end(page: tifffile.TiffPage | tifffile.TiffFrame) -> int:
    offsets = np.asarray(page.dataoffsets, np.int64)
    bytecounts = np.asarray(page.databytecounts, np.int64)
    if offsets.size == 0 or bytecounts.size != offsets.size:
        return 0
    return int((offsets + bytecounts).max())


def _truncation_error(end: int, size: int, path: str) -> SourceError:
    return SourceError(
        f"file is truncated: its image data ends at byte {end} but the file has {size} bytes: {path}"
    )


def _check_contiguous_data(level: tifffile.TiffPageSeries, plan: _LevelPlan, path: str) -> None:
    end = level.dataoffset + plan.pages * level.keyframe.nbytes
    size = os.path.getsize(path)
    if end > size:
        raise _truncation_error(end, size, path)


def _check_paged_data(
    tiff: tifffile.TiffFile, pages: Sequence[tifffile.TiffPage | tifffile.TiffFrame | None], path: str
) -> None:
    """Compare the end of the first and last pages' data with the file size: files cut short while copying
    lose their tail. Pages from other files of a multi-file OME-TIFF are checked when read."""
    present = [page for page in pages if page is not None]
    ends = [_data_end(page) for page in present[:1] + present[-1:] if page.parent is tiff]
    size = os.path.getsize(path)
    if ends and max(ends) > size:
        raise _truncation_error(max(ends), size, path)


def _check_imagej_stack(tiff: tifffile.TiffFile, series: tifffile.TiffPageSeries, path: str) -> None:
    """ImageJ stacks keep all planes after the first IFD's data. When the file was cut short, tifffile drops
    the ImageJ series and offers only the planes that have IFDs, which would silently hide the loss."""
    metadata = tiff.imagej_metadata
    if series.kind == "imagej" or not metadata:
        return
    first = tiff.pages.first
    images = int(metadata.get("images", 1))
    if first.is_final and images > len(tiff.pages):
        end = first.dataoffsets[0] + images * first.nbytes
        size = os.path.getsize(path)
        if end > size:
            raise _truncation_error(end, size, path)


# ----------------------------------------------------------------------------------------------------------
# Metadata


def _ome_pixels(
    tiff: tifffile.TiffFile, series: tifffile.TiffPageSeries, index: int
) -> ElementTree.Element | None:
    """The OME Pixels element describing ``series``: by position when every Image became a series, else by a
    unique Image name."""
    try:
        root = ElementTree.fromstring(tiff.ome_metadata or "")
    except ElementTree.ParseError:
        return None
    images = [element for element in root if element.tag.endswith("}Image") or element.tag == "Image"]
    if len(images) == len(tiff.series):
        image = images[index]
    else:
        named = [element for element in images if element.get("Name") == series.name]
        if len(named) != 1:
            return None
        image = named[0]
    return next((child for child in image if child.tag.endswith("Pixels")), None)


def _positive(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def _reciprocal(value: Any) -> float | None:
    positive = _positive(value)
    return None if positive is None else 1 / positive


def _physical_size(value: float | None, unit: Any, kind: UnitKind) -> PhysicalSize | None:
    """A size only in a unit NGFF knows: a pixel-based or unknown unit would make axes incomparable."""
    name = udunits_name(str(unit), kind) if unit is not None else None
    return PhysicalSize(value, name) if value is not None and name is not None else None


def _ome_physical_sizes(pixels: ElementTree.Element, sources: dict[str, str]) -> dict[str, PhysicalSize]:
    sizes = {}
    for axis, code, attribute, default_unit, kind in _OME_SIZES:
        size = _physical_size(
            _positive(pixels.get(attribute)), pixels.get(attribute + "Unit", default_unit), kind
        )
        if size is not None and sources.get(axis) == code:
            sizes[axis] = size
    return sizes


def _imagej_physical_sizes(
    metadata: dict[str, Any], keyframe: tifffile.TiffPage, sources: dict[str, str]
) -> dict[str, PhysicalSize]:
    """ImageJ keeps pixels per unit in X/YResolution, the unit and z spacing in its description."""
    unit = metadata.get("unit")
    x_resolution, y_resolution = keyframe.get_resolution()
    candidates: tuple[tuple[str, float | None, Any, UnitKind], ...] = (  # axis, value, unit, kind
        ("x", _reciprocal(x_resolution), unit, "space"),
        ("y", _reciprocal(y_resolution), metadata.get("yunit", unit), "space"),
        ("z", _positive(metadata.get("spacing")), metadata.get("zunit", unit), "space"),
        ("t", _positive(metadata.get("finterval")), metadata.get("tunit", "sec"), "time"),
    )
    sizes = {}
    for axis, value, axis_unit, kind in candidates:
        # Uncalibrated ImageJ images have no unit (or "pixel"): their spatial "sizes" are just 1 pixel.
        size = _physical_size(value, axis_unit, kind)
        if size is not None and sources.get(axis) == axis.upper():
            sizes[axis] = size
    return sizes


def _resolution_physical_sizes(keyframe: tifffile.TiffPage) -> dict[str, PhysicalSize]:
    """Plain TIFF: X/YResolution only in a metric unit; inch-based values are print dpi, not pixel sizes."""
    micrometers = _RESOLUTION_UNIT_MICROMETERS.get(int(keyframe.resolutionunit))
    if micrometers is None:
        return {}
    sizes = {}
    for axis, resolution in zip("xy", keyframe.get_resolution(), strict=True):
        pixel_size = _reciprocal(resolution)
        if pixel_size is not None:
            sizes[axis] = PhysicalSize(micrometers * pixel_size, "micrometer")
    return sizes


def _ome_color(value: str | None) -> str | None:
    """OME colors are signed 32-bit RGBA integers."""
    try:
        rgba = int(value) & 0xFFFFFFFF  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return f"{rgba >> 8:06X}"


def _ome_channels(pixels: ElementTree.Element) -> list[Channel]:
    return [
        Channel(name=element.get("Name"), color=_ome_color(element.get("Color")))
        for element in pixels
        if element.tag.endswith("Channel")
    ]


def _lut_color(lut: Any) -> str | None:
    table = np.asarray(lut)
    if table.ndim != 2 or table.shape[0] != 3:
        return None
    red, green, blue = (int(value) for value in table[:, -1])
    return f"{red:02X}{green:02X}{blue:02X}"


def _imagej_channels(metadata: dict[str, Any], channel_count: int) -> list[Channel]:
    """ImageJ stores per-plane labels and per-channel lookup tables; labels name channels only when every
    plane is a channel."""
    labels = metadata.get("Labels")
    luts = metadata.get("LUTs")
    names = (
        list(labels) if isinstance(labels, list) and len(labels) == channel_count else [None] * channel_count
    )
    colors = (
        [_lut_color(lut) for lut in luts] if isinstance(luts, list) and len(luts) == channel_count else []
    )
    colors = colors or [None] * channel_count
    if not any(names) and not any(colors):
        return []
    return [Channel(name=name or None, color=color) for name, color in zip(names, colors, strict=True)]


def _sample_channels(keyframe: tifffile.TiffPage, samples: int) -> list[Channel]:
    if keyframe.photometric == tifffile.PHOTOMETRIC.RGB and samples in (3, 4):
        return [Channel(name=name, color=color) for name, color in _RGB_SAMPLES[:samples]]
    return []


def _expand_by_samples(channels: list[Channel], samples: list[Channel], count: int) -> list[Channel]:
    """One entry per canonical channel when each declared channel holds several samples (C and S merged)."""
    if len(channels) == count:
        return channels
    if samples and len(channels) * len(samples) == count:
        return [
            Channel(name=" ".join(filter(None, (channel.name, sample.name))) or None, color=sample.color)
            for channel in channels
            for sample in samples
        ]
    return samples if len(samples) == count else []


# ----------------------------------------------------------------------------------------------------------
# The source


class TiffSource(ImageSource):
    """One series of a TIFF file. Opening reads metadata only; ``read_region`` is thread-safe and lock-free
    except for the small cache of decoded segments shared between regions."""

    def __init__(
        self, path: str, series: int = 0, *, segment_cache_bytes: int = DEFAULT_SEGMENT_CACHE_BYTES
    ) -> None:
        self.path = path
        self._files: dict[int, _PixelFile] = {}  # by id() of the TiffFile a page belongs to
        self._levels: list[_LevelReader] = []
        self._cache = _SegmentCache(segment_cache_bytes)
        self._tiff = _open_tifffile(path)
        try:
            self._open_series(series)
        except BaseException:
            self.close()
            raise

    def _open_series(self, index: int) -> None:
        tiff, path = self._tiff, self.path
        series = _select_series(tiff, index, path)
        _check_imagej_stack(tiff, series, path)
        full_shape, full_axes = series.get_shape(False), series.get_axes(False)
        # Like tifffile's default view: drop size-1 dimensions, except the image plane itself.
        kept = [size > 1 or code in "YX" for size, code in zip(full_shape, full_axes, strict=True)]
        kept_axes = "".join(code for code, keep in zip(full_axes, kept, strict=True) if keep)
        letters = _canonical_letters(kept_axes, path)
        self._files[id(tiff)] = _PixelFile(path)
        for level in series.levels:
            try:
                reader = self._level_reader(level, kept, letters)
            except SourceError:
                if not self._levels:
                    raise
                break  # an odd reduced level: serve the levels before it
            self._levels.append(reader)
        axes = "".join(letter for letter in CANONICAL_AXES if letter in letters)
        sources = {
            letter: "".join(code for code, mapped in zip(kept_axes, letters, strict=True) if mapped == letter)
            for letter in axes
        }
        level0 = self._levels[0].plan
        physical_sizes, channels = self._metadata(series, index, sources, axes, level0.shape)
        self.info = SourceInfo(
            axes=axes,
            dtype=np.dtype(series.dtype).newbyteorder("="),
            levels=[Level(reader.plan.shape, reader.storage_unit) for reader in self._levels],
            physical_sizes=physical_sizes,
            channels=channels,
            description=self._description(series, index),
        )

    def _level_reader(
        self, level: tifffile.TiffPageSeries, kept: Sequence[bool], letters: Sequence[str]
    ) -> _LevelReader:
        keyframe = level.keyframe
        _check_decodable(keyframe, self.path)
        plan = _plan_level(level, kept, letters, self.path)
        dtype = np.dtype(level.dtype).newbyteorder("=")
        file_dtype = np.dtype(keyframe.dtype).newbyteorder(self._tiff.byteorder)
        if level.dataoffset is not None and not level.is_multifile and level.parent is self._tiff:
            _check_contiguous_data(level, plan, self.path)
            return _ContiguousLevel(plan, dtype, self._files[id(self._tiff)], level.dataoffset, file_dtype)
        # Resolving pages now, single-threaded, keeps tifffile's file handle out of read_region.
        pages = list(level)
        _check_paged_data(self._tiff, pages, self.path)
        for page in pages:
            if page is not None and id(page.parent) not in self._files:
                self._files[id(page.parent)] = _PixelFile(page.parent.filehandle.path)
        return _PagedLevel(plan, dtype, pages, self._files, keyframe, file_dtype, self._cache)

    def _metadata(
        self,
        series: tifffile.TiffPageSeries,
        index: int,
        sources: dict[str, str],
        axes: str,
        shape: tuple[int, ...],
    ) -> tuple[dict[str, PhysicalSize], list[Channel]]:
        tiff, keyframe = self._tiff, series.keyframe
        channel_count = shape[axes.index("c")] if "c" in axes else 0
        samples = _sample_channels(keyframe, keyframe.samplesperpixel) if "S" in sources.get("c", "") else []
        pixels = _ome_pixels(tiff, series, index) if series.kind == "ome" else None
        if pixels is not None:
            channels = _ome_channels(pixels)
            sizes = _ome_physical_sizes(pixels, sources)
        elif series.kind == "imagej" and tiff.imagej_metadata is not None:
            channels = _imagej_channels(tiff.imagej_metadata, channel_count)
            sizes = _imagej_physical_sizes(tiff.imagej_metadata, keyframe, sources)
        else:
            channels = []
            sizes = _resolution_physical_sizes(keyframe)
        return sizes, _expand_by_samples(channels, samples, channel_count) if channel_count else []

    def _description(self, series: tifffile.TiffPageSeries, index: int) -> str:
        tiff, keyframe = self._tiff, series.keyframe
        parts = [_KIND_NAMES.get(series.kind, f"TIFF ({series.kind})")]
        if tiff.is_bigtiff:
            parts.append("BigTIFF")
        if keyframe.is_tiled:
            parts.append(f"tiled {keyframe.tilelength}x{keyframe.tilewidth}")
        else:
            rows = min(keyframe.rowsperstrip, keyframe.imagelength)
            parts.append("one strip per plane" if rows >= keyframe.imagelength else f"strips of {rows} rows")
        compression = _compression_name(keyframe).lower()
        if keyframe.predictor != 1:
            compression += f" + {tifffile.PREDICTOR(keyframe.predictor).name.lower()} predictor"
        parts.append(compression)
        parts.append(str(np.dtype(series.dtype)))
        if tiff.byteorder == ">":
            parts.append("big-endian")
        if keyframe.planarconfig == 2 and keyframe.samplesperpixel > 1:
            parts.append("planar samples")
        if len(self._levels) > 1:
            parts.append(f"{len(self._levels)} levels")
        parts.append(f"series {index} of {len(tiff.series)}")
        return ", ".join(parts)

    def read_region(self, level: int, region: tuple[slice, ...]) -> np.ndarray:
        if not self._files:
            raise SourceError(f"source is closed: {self.path}")
        reader = self._levels[level]
        if len(region) != len(reader.plan.shape):
            raise ValueError(f"region has {len(region)} axes, the image has {len(reader.plan.shape)}")
        return reader.read(region)

    def close(self) -> None:
        for file in self._files.values():
            file.close()
        self._files.clear()
        self._cache.clear()
        self._tiff.close()
