"""Level readers: fill a region of one resolution level from the file, either by reading rows straight from
uncompressed data or by decoding the tiles or strips the region touches."""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence

import numpy as np
import tifffile

from zarrfs.errors import SourceError, one_line
from zarrfs.lru import ByteLRUCache
from zarrfs.sources.blocks import blocks_touched
from zarrfs.sources.pixelfile import SourceFile
from zarrfs.sources.tiff.geometry import segment_kind
from zarrfs.sources.tiff.layout import LevelPlan, SegmentGrid, plane_targets, storage_unit

Page = tifffile.TiffPage | tifffile.TiffFrame

# (plane index in the output, depth slice, interleaved sample) for each output plane one page provides
PlaneItems = list[tuple[int, int, int]]
# Outer-axis bounds whose page groups are remembered: chunks side by side share them (a few KiB each).
REMEMBERED_OUTER_REGIONS = 1024
# A stored tile or strip may exceed its decoded size: codecs expand data they cannot compress (LZW by up to
# half, PackBits by 1/128, deflate and zstd by a few bytes) and JPEG-like formats carry headers bigger than a
# tiny tile. A byte count beyond this much is corrupt, and is refused before anything is allocated for it.
STORED_GROWTH = 4
STORED_SLACK_BYTES = 2**20


class LevelReader(ABC):
    def __init__(self, plan: LevelPlan, dtype: np.dtype, file_dtype: np.dtype) -> None:
        self.plan = plan
        self.dtype = dtype  # native byte order, what read() returns
        self.file_dtype = file_dtype  # as stored, for bytes read without decoding
        self.pixel_bytes = plan.grid.contig * file_dtype.itemsize  # one pixel's samples, as stored
        self.row_bytes = plan.grid.width * self.pixel_bytes
        self.storage_unit = storage_unit(plan, self.reads_rows)
        self._page_groups = functools.lru_cache(maxsize=REMEMBERED_OUTER_REGIONS)(self._group_by_page)

    @property
    @abstractmethod
    def reads_rows(self) -> bool:
        """True if any run of rows is read straight from the file, without decoding a whole tile or strip."""

    def read(self, region: Sequence[slice]) -> np.ndarray:
        *outer_region, rows, columns = region
        out = np.empty(tuple(axis_slice.stop - axis_slice.start for axis_slice in region), self.dtype)
        planes = out.reshape(-1, rows.stop - rows.start, columns.stop - columns.start)
        groups = self._page_groups(tuple((axis.start, axis.stop) for axis in outer_region))
        self._prefetch(groups, rows, columns)
        for (page, separate), items in groups.items():
            self._fill_from_page(planes, page, separate, items, rows, columns)
        return out

    def _prefetch(self, groups: dict[tuple[int, int], PlaneItems], rows: slice, columns: slice) -> None:
        """Tell the files about every byte range the region will read (default: nothing to tell)."""
        return None

    def _group_by_page(self, bounds: tuple[tuple[int, int], ...]) -> dict[tuple[int, int], PlaneItems]:
        """The output planes of the outer region ``bounds``, grouped by the (page, separate plane) storing
        them. Every chunk of a row of chunks asks the same: remembered, as the small numpy steps here were
        up to a tenth of the daemon's time for RGB slides (they hold the GIL that decoding threads want)."""
        groups: dict[tuple[int, int], PlaneItems] = {}
        targets = plane_targets(self.plan.outer_dims, [slice(start, stop) for start, stop in bounds])
        for plane, (page, separate, depth, contig) in enumerate(targets.tolist()):
            groups.setdefault((page, separate), []).append((plane, depth, contig))
        return groups

    @abstractmethod
    def _fill_from_page(
        self, planes: np.ndarray, page: int, separate: int, items: PlaneItems, rows: slice, columns: slice
    ) -> None:
        """Copy rows x columns of the listed (depth, sample) planes of one page into ``planes``."""

    def _copy_rows(
        self,
        planes: np.ndarray,
        items: PlaneItems,
        file: SourceFile,
        offset: int,
        first_row: int,
        stop_row: int,
        rows: slice,
        columns: slice,
    ) -> None:
        """Copy image rows first_row..stop_row-1 of the region's columns, stored uncompressed from byte
        ``offset`` of ``file`` on (where row ``first_row`` starts), into the listed planes."""
        start = first_row - rows.start
        offset += columns.start * self.pixel_bytes
        if self.plan.grid.contig == 1:
            # One sample per pixel: the stored bytes are the output rows, so the kernel copies them straight
            # into the output (with contig 1, a depth slice is one item).
            ((plane, _, _),) = items
            target = planes[plane, start : start + stop_row - first_row]
            file.read_rows_into(target.view(np.uint8), offset, self.row_bytes)
            if not self.file_dtype.isnative:
                target.byteswap(inplace=True)
            return
        window = file.read_window(
            offset, self.row_bytes, stop_row - first_row, (columns.stop - columns.start) * self.pixel_bytes
        )
        pixels = window.view(self.file_dtype).reshape(window.shape[0], -1, self.plan.grid.contig)
        for plane, _, contig in items:
            planes[plane, start : start + pixels.shape[0]] = pixels[:, :, contig]


def _items_by_depth(items: PlaneItems) -> dict[int, PlaneItems]:
    """The items grouped by depth slice, shallowest first: one slice's samples are read together."""
    groups: dict[int, PlaneItems] = {}
    for item in sorted(items, key=lambda item: item[1]):
        groups.setdefault(item[1], []).append(item)
    return groups


class ContiguousLevel(LevelReader):
    """Uncompressed pages stored back to back from ``dataoffset`` (including ImageJ stacks with a single IFD
    and tifffile files whose later IFDs are never read): every row's position is arithmetic."""

    def __init__(
        self, plan: LevelPlan, dtype: np.dtype, file: SourceFile, dataoffset: int, file_dtype: np.dtype
    ) -> None:
        super().__init__(plan, dtype, file_dtype)
        self.file = file
        self.dataoffset = dataoffset
        self.plane_bytes = plan.grid.length * self.row_bytes

    @property
    def reads_rows(self) -> bool:
        return True

    def _fill_from_page(
        self, planes: np.ndarray, page: int, separate: int, items: PlaneItems, rows: slice, columns: slice
    ) -> None:
        grid = self.plan.grid
        for depth, depth_items in _items_by_depth(items).items():
            plane_index = (page * grid.separate + separate) * grid.depth + depth
            offset = self.dataoffset + plane_index * self.plane_bytes + rows.start * self.row_bytes
            self._copy_rows(planes, depth_items, self.file, offset, rows.start, rows.stop, rows, columns)


def _written_segment(page: Page, index: int) -> tuple[int, int] | None:
    """(offset, byte count) of one tile or strip, or None where a sparse file never wrote it."""
    offset, bytecount = page.dataoffsets[index], page.databytecounts[index]
    return None if offset == 0 or bytecount == 0 else (offset, bytecount)


def max_stored_bytes(grid: SegmentGrid, itemsize: int) -> int:
    """The most bytes a tile or strip of ``grid`` can take in the file (see STORED_GROWTH)."""
    decoded = grid.segment_depth * grid.segment_length * grid.segment_width * grid.contig * itemsize
    return STORED_GROWTH * decoded + STORED_SLACK_BYTES


def stored_segment(
    page: Page, index: int, files: dict[int, SourceFile], max_bytes: int
) -> tuple[SourceFile, int, int] | None:
    """(file, offset, byte count) of one tile or strip to read whole, or None where a sparse file never
    wrote it. Only the first and last pages are checked at open (a stack may have 100,000 pages), so the byte
    count is checked here, before anything is allocated for it: it may be any 64-bit number."""
    written = _written_segment(page, index)
    if written is None:
        return None
    offset, bytecount = int(written[0]), int(written[1])
    file = files[id(page.parent)]
    kind = segment_kind(page)
    if bytecount > max_bytes:
        problem = f"more than such a {kind} can take ({max_bytes} bytes)"
    elif offset + bytecount > file.size:
        problem = f"from byte {offset} on, past the end of the file ({file.size} bytes)"
    else:
        return file, offset, bytecount
    raise SourceError(f"{kind} {index} of page {page.index} claims {bytecount} bytes, {problem}: {file.path}")


class PagedLevel(LevelReader):
    """Pages with their own tiles or strips: read and decode only the segments a region touches."""

    def __init__(
        self,
        plan: LevelPlan,
        dtype: np.dtype,
        pages: Sequence[Page | None],
        files: dict[int, SourceFile],
        keyframe: tifffile.TiffPage,
        file_dtype: np.dtype,
        cache: ByteLRUCache[np.ndarray],
    ) -> None:
        self.raw_strips = _stores_raw_rows(keyframe) and not keyframe.is_tiled  # before reads_rows is used
        super().__init__(plan, dtype, file_dtype)
        self.fill_value = keyframe.nodata  # for segments a sparse file never wrote
        self.pages = pages
        self.files = files  # by id() of the TiffFile a page belongs to
        self.keyframe = keyframe
        self.cache = cache
        # Every page of a series shares the keyframe's storage properties, hence its decode function.
        self.decode = keyframe.decode
        self.jpegheader = keyframe.jpegheader
        self.max_stored_bytes = max_stored_bytes(plan.grid, file_dtype.itemsize)

    @property
    def reads_rows(self) -> bool:
        return self.raw_strips

    def _fill_from_page(
        self, planes: np.ndarray, page: int, separate: int, items: PlaneItems, rows: slice, columns: slice
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
        self, planes: np.ndarray, page: Page, separate: int, items: PlaneItems, rows: slice, columns: slice
    ) -> None:
        grid = self.plan.grid
        file = self.files[id(page.parent)]
        for depth, depth_items in _items_by_depth(items).items():
            for row_block in blocks_touched(rows.start, rows.stop, grid.segment_length):
                index = grid.segment_index(separate, depth, row_block, 0)
                strip_row = row_block * grid.segment_length
                first = max(rows.start, strip_row)
                stop = min(rows.stop, strip_row + grid.segment_length)
                written = _written_segment(page, index)
                if written is None:
                    for plane, _, _ in depth_items:
                        planes[plane, first - rows.start : stop - rows.start] = self.fill_value
                    continue
                offset, bytecount = written
                if (stop - strip_row) * self.row_bytes > bytecount:
                    raise SourceError(
                        f"strip {index} of page {page.index} is shorter than its rows: {file.path}"
                    )
                row_offset = offset + (first - strip_row) * self.row_bytes
                self._copy_rows(planes, depth_items, file, row_offset, first, stop, rows, columns)

    def _segments_touched(
        self, separate: int, items: PlaneItems, rows: slice, columns: slice
    ) -> Iterator[tuple[int, tuple[int, int, int]]]:
        """(index, origin) of every tile or strip of a page that the region's rows x columns of the listed
        planes touch; the origin is its first (depth, row, column)."""
        grid = self.plan.grid
        depths = [depth for _, depth, _ in items]
        for depth_block in blocks_touched(min(depths), max(depths) + 1, grid.segment_depth):
            for row_block in blocks_touched(rows.start, rows.stop, grid.segment_length):
                for column_block in blocks_touched(columns.start, columns.stop, grid.segment_width):
                    origin = (
                        depth_block * grid.segment_depth,
                        row_block * grid.segment_length,
                        column_block * grid.segment_width,
                    )
                    yield grid.segment_index(separate, depth_block, row_block, column_block), origin

    def _prefetch(self, groups: dict[tuple[int, int], PlaneItems], rows: slice, columns: slice) -> None:
        """Every tile or strip the region decodes, told to its file at once: a remote file fetches them in
        concurrent requests, adjacent ones merged, instead of one round trip after the other."""
        if self.raw_strips:
            return
        wanted: dict[int, tuple[SourceFile, list[tuple[int, int]]]] = {}
        for (page, separate), items in groups.items():
            tiff_page = self.pages[page] if page < len(self.pages) else None
            if tiff_page is None:
                continue
            for index, _ in self._segments_touched(separate, items, rows, columns):
                stored = stored_segment(tiff_page, index, self.files, self.max_stored_bytes)
                if stored is not None:
                    file, offset, bytecount = stored
                    wanted.setdefault(id(file), (file, []))[1].append((offset, offset + bytecount))
        for file, ranges in wanted.values():
            file.prefetch(ranges)

    def _fill_from_segments(
        self, planes: np.ndarray, page: Page, separate: int, items: PlaneItems, rows: slice, columns: slice
    ) -> None:
        for index, origin in self._segments_touched(separate, items, rows, columns):
            segment = self._segment(page, index, shared=not self._covers(origin, items, rows, columns))
            self._paste(planes, segment, origin, items, rows, columns)

    def _covers(self, origin: tuple[int, int, int], items: PlaneItems, rows: slice, columns: slice) -> bool:
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

    def _segment(self, page: Page, index: int, shared: bool) -> np.ndarray | None:
        """The decoded segment, or None where a sparse file never wrote it. A ``shared`` segment, which other
        regions need too, goes through the cache: decoded once, kept read-only."""
        stored = stored_segment(page, index, self.files, self.max_stored_bytes)
        if stored is None:
            return None
        file, offset, bytecount = stored
        if not shared:
            return self._decode_segment(file, page, index, offset, bytecount)

        def decode_shared() -> np.ndarray:
            segment = self._decode_segment(file, page, index, offset, bytecount)
            segment.setflags(write=False)
            return segment

        return self.cache.get_or_compute((file.cache_key, offset), decode_shared)

    def _decode_segment(
        self, file: SourceFile, page: Page, index: int, offset: int, bytecount: int
    ) -> np.ndarray:
        data = file.read(bytecount, offset)
        jpegtables = page.jpegtables if page.jpegtables is not None else self.keyframe.jpegtables
        try:
            segment, _, _ = self.decode(data, index, jpegtables=jpegtables, jpegheader=self.jpegheader)
        except Exception as error:
            kind = "tile" if self.plan.grid.tiled else "strip"
            raise SourceError(
                f"cannot decode {kind} {index} of page {page.index} ({one_line(error)}): {file.path}"
            ) from error
        if segment is None:  # tifffile's way of saying the segment holds no data
            kind = "tile" if self.plan.grid.tiled else "strip"
            raise SourceError(f"{kind} {index} of page {page.index} decodes to nothing: {file.path}")
        return segment

    def _paste(
        self,
        planes: np.ndarray,
        segment: np.ndarray | None,
        origin: tuple[int, int, int],
        items: PlaneItems,
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
