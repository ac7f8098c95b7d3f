"""Native pass-through: the tiles of a level that the server can send exactly as stored, because the Zarr
chunk grid is the tile grid and a standard Zarr codec decodes every stored tile as it is.

Only plain layouts qualify: 2-D tiles (no strips, no volumetric tiles), one sample per tile (one sample per
pixel or planar samples), numbers stored at their native size in little-endian order, no predictor or fill
order tricks, and compression none, deflate or zstd. Every canonical ``(t, c, z)`` index must be one stored
plane of a page the file really holds. Anything else is refused at open: the level is then served by decoding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tifffile

from zarrfs.sources.base import NativeBlocks
from zarrfs.sources.pixelfile import SourceFile
from zarrfs.sources.tiff.layout import SegmentGrid, plane_targets
from zarrfs.sources.tiff.readers import LevelReader, Page, PagedLevel, stored_segment

# TIFF compression -> the numcodecs id that decodes its tiles unchanged ("none": raw). Deflate tiles are zlib
# streams (header and checksum included); zstd tiles are zstd frames.
_CODECS = {1: "none", 8: "zlib", 32946: "zlib", 50000: "zstd"}


@dataclass(frozen=True)
class NativeLevel:
    """Where each native block of one level is stored: plane tables resolved at open, read per call."""

    blocks: NativeBlocks
    grid_shape: tuple[int, ...]  # blocks per canonical axis
    planes: tuple[tuple[Page, int], ...]  # (page, separate sample) per outer index, C order of outer axes
    grid: SegmentGrid
    files: dict[int, SourceFile]  # by id() of the TiffFile a page belongs to
    raw_tile_bytes: int | None  # uncompressed tiles: the exact size read for each
    max_stored_bytes: int  # a larger byte count is corrupt (see stored_segment)

    def read(self, index: Sequence[int]) -> bytes | None:
        """The stored bytes of block ``index``, or None for a tile the file never wrote."""
        if len(index) != len(self.grid_shape):
            raise IndexError(
                f"block index {tuple(index)} has {len(index)} axes, the grid has {self.grid_shape}"
            )
        plane = 0
        for position, (block, blocks) in enumerate(zip(index, self.grid_shape, strict=True)):
            if not 0 <= block < blocks:
                raise IndexError(f"block index {tuple(index)} is outside the block grid {self.grid_shape}")
            if position < len(self.grid_shape) - 2:
                plane = plane * blocks + block
        page, separate = self.planes[plane]
        segment = self.grid.segment_index(separate, 0, index[-2], index[-1])
        stored = stored_segment(page, segment, self.files, self.max_stored_bytes)
        if stored is None:
            return None
        file, offset, bytecount = stored
        return file.read(bytecount if self.raw_tile_bytes is None else self.raw_tile_bytes, offset)


def native_level(reader: LevelReader) -> NativeLevel | None:
    """The level's native blocks, or None unless every block of the level can be passed through."""
    # Contiguous levels (ImageJ single-IFD stacks, uncompressed tiles as wide as the image, ...) are read by
    # arithmetic on one data offset, without per-page tile tables: left to that reader.
    if not isinstance(reader, PagedLevel):
        return None
    keyframe, plan, grid = reader.keyframe, reader.plan, reader.plan.grid
    codec = _codec(keyframe)
    if codec is None or not grid.tiled or grid.depth != 1 or grid.segment_depth != 1 or grid.contig != 1:
        return None
    planes = _planes(reader)
    if planes is None:
        return None
    assert keyframe.dtype is not None  # _codec checked it
    itemsize = keyframe.dtype.itemsize
    raw_tile_bytes = grid.segment_length * grid.segment_width * itemsize if codec == "none" else None
    segments = grid.separate * grid.length_segments * grid.width_segments
    storage = _storage_key(keyframe)
    checked: set[int] = set()
    for page, _ in planes:
        if id(page) in checked:
            continue
        checked.add(id(page))
        if not _same_storage(page, storage, itemsize) or not _segments_fit(page, segments, raw_tile_bytes):
            return None
    outer_shape = plan.shape[:-2]
    return NativeLevel(
        blocks=NativeBlocks((*(1 for _ in outer_shape), grid.segment_length, grid.segment_width), codec),
        grid_shape=(*outer_shape, grid.length_segments, grid.width_segments),
        planes=planes,
        grid=grid,
        files=reader.files,
        raw_tile_bytes=raw_tile_bytes,
        max_stored_bytes=reader.max_stored_bytes,
    )


def _codec(keyframe: tifffile.TiffPage) -> str | None:
    """The Zarr codec of the keyframe's tiles, if its samples are stored as plain little-endian numbers."""
    dtype = keyframe.dtype
    if (
        dtype is None
        or keyframe.bitspersample != dtype.itemsize * 8  # packed or 1-bit samples
        or keyframe.sampleformat == 5  # complex integers: tifffile converts them
        or keyframe.predictor != 1
        or keyframe.fillorder != 1
        or keyframe.is_subsampled
        or keyframe.jpegtables is not None
    ):
        return None
    return _CODECS.get(keyframe.compression)


def _storage_key(page: tifffile.TiffPage) -> tuple[object, ...]:
    """Everything that decides how a page's tiles are stored."""
    return (
        page.shaped,
        page.tilelength,
        page.tilewidth,
        page.tiledepth,
        page.compression,
        page.predictor,
        page.fillorder,
        page.sampleformat,
        page.bitspersample,
        page.planarconfig,
        page.is_subsampled,
        page.jpegtables is None,
    )


def _same_storage(page: Page, storage: tuple[object, ...], itemsize: int) -> bool:
    """The page (a frame takes its keyframe's properties) stores tiles like the level's keyframe, in a file
    of little-endian numbers (byte order is irrelevant to 1-byte samples)."""
    keyframe = page.keyframe if isinstance(page, tifffile.TiffFrame) else page
    if keyframe is None or _storage_key(keyframe) != storage:
        return False
    return itemsize == 1 or page.parent.byteorder == "<"


def _segments_fit(page: Page, segments: int, raw_tile_bytes: int | None) -> bool:
    """The page lists every tile, and uncompressed tiles it wrote hold at least one whole tile of bytes."""
    offsets = np.asarray(page.dataoffsets, np.int64)
    bytecounts = np.asarray(page.databytecounts, np.int64)
    if offsets.shape != (segments,) or bytecounts.shape != (segments,):
        return False
    if raw_tile_bytes is None:
        return True
    written = (offsets != 0) & (bytecounts != 0)
    return bool(np.all(bytecounts[written] >= raw_tile_bytes))


def _planes(reader: PagedLevel) -> tuple[tuple[Page, int], ...] | None:
    """(page, separate sample) of every canonical outer index, or None unless each is a stored 2-D plane."""
    plan = reader.plan
    outer_shape = plan.shape[:-2]
    if math.prod(outer_shape) == 0:
        return None
    targets = plane_targets(plan.outer_dims, [slice(0, size) for size in outer_shape])
    if targets.shape[0] != math.prod(outer_shape) or np.any(targets[:, 2:] != 0):
        return None  # depth slices or interleaved samples: not whole tiles per index
    pages = reader.pages
    planes = []
    for page_number, separate in targets[:, :2].tolist():
        page = pages[page_number] if 0 <= page_number < len(pages) else None
        if page is None or not 0 <= separate < plan.grid.separate:
            return None  # a plane the metadata announces but the file lacks
        planes.append((page, separate))
    return tuple(planes)
