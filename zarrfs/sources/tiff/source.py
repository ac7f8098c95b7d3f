"""The TIFF image source: opens one series, builds its ``SourceInfo`` and hands regions to level readers."""

from __future__ import annotations

import os

import numpy as np
import tifffile

from zarrfs.errors import SourceError
from zarrfs.lru import ByteLRUCache
from zarrfs.sources.base import ImageSource, Level, SourceInfo
from zarrfs.sources.blocks import PassThroughLevels, decoded_block_cache
from zarrfs.sources.pixelfile import PixelFile, SourceFile
from zarrfs.sources.tiff.checks import (
    check_contiguous_data,
    check_decodable,
    check_imagej_stack,
    check_paged_data,
    open_tifffile,
    select_series,
)
from zarrfs.sources.tiff.geometry import check_geometry, check_segment_size, check_segment_tables
from zarrfs.sources.tiff.layout import AxisMap, plan_level
from zarrfs.sources.tiff.metadata import describe, image_metadata
from zarrfs.sources.tiff.native import NativeLevel, native_level
from zarrfs.sources.tiff.readers import ContiguousLevel, LevelReader, PagedLevel
from zarrfs.sources.tiff.tifflog import tifffile_messages

# Decoded tiles or strips that more than one region needs (typically one huge strip read chunk by chunk).
DEFAULT_SEGMENT_CACHE_BYTES = 256 * 2**20


class TiffSource(PassThroughLevels, ImageSource):
    """One series of a TIFF file. Opening reads metadata only; ``read_region`` is thread-safe and lock-free
    except for the small cache of decoded segments shared between regions."""

    def __init__(
        self,
        path: str,
        series: int = 0,
        *,
        segment_cache_bytes: int = DEFAULT_SEGMENT_CACHE_BYTES,
        file: SourceFile | None = None,
    ) -> None:
        """``file``: where the bytes are, when not in the local file ``path`` (an object at a URL)."""
        self.path = path
        self._file = file
        self._files: dict[int, SourceFile] = {}  # by id() of the TiffFile a page belongs to
        self._levels: list[LevelReader] = []
        self._native: list[NativeLevel | None] = []  # per level: its tiles served as stored, if they can be
        self._tiff: tifffile.TiffFile | None = None
        try:
            with tifffile_messages(path):
                self._tiff = open_tifffile(path, file)
                self._open_series(self._tiff, series, decoded_block_cache(segment_cache_bytes))
        except BaseException:
            self.close()
            raise
        # This file and, for a multi-file OME-TIFF, the other files its planes are read from.
        self._paths = (
            (path,)
            if file is not None
            else tuple(dict.fromkeys(os.path.abspath(f.path) for f in self._files.values()))
        )

    def _open_series(self, tiff: tifffile.TiffFile, index: int, cache: ByteLRUCache[np.ndarray]) -> None:
        """Build the level readers, which share ``cache`` (dropped with them at close), and ``info``."""
        path = self.path
        series = select_series(tiff, index, path)
        check_imagej_stack(tiff, series, path)
        axis_map = AxisMap.of(series, path)
        self._files[id(tiff)] = PixelFile(path) if self._file is None else self._file
        for level in series.levels:
            try:
                reader = self._level_reader(tiff, level, axis_map, cache)
            except SourceError:
                if not self._levels:
                    raise
                break  # an odd reduced level: serve the levels before it
            self._levels.append(reader)
        self._native = [native_level(reader) for reader in self._levels]
        shape = self._levels[0].plan.shape
        channel_count = shape[axis_map.axes.index("c")] if "c" in axis_map.axes else 0
        physical_sizes, channels, notes = image_metadata(tiff, series, index, axis_map.sources, channel_count)
        self.info = SourceInfo(
            axes=axis_map.axes,
            dtype=np.dtype(series.dtype).newbyteorder("="),
            levels=[Level(reader.plan.shape, reader.storage_unit) for reader in self._levels],
            physical_sizes=physical_sizes,
            channels=channels,
            description=describe(tiff, series, index, len(self._levels)),
            notes=tuple(notes),
        )

    def _level_reader(
        self,
        tiff: tifffile.TiffFile,
        level: tifffile.TiffPageSeries,
        axis_map: AxisMap,
        cache: ByteLRUCache[np.ndarray],
    ) -> LevelReader:
        keyframe = level.keyframe
        check_geometry(keyframe, self.path)
        check_decodable(keyframe, self.path)
        plan = plan_level(level, axis_map, self.path)
        dtype = np.dtype(level.dtype).newbyteorder("=")
        file_dtype = np.dtype(keyframe.dtype).newbyteorder(tiff.byteorder)
        if level.dataoffset is not None and not level.is_multifile and level.parent is tiff:
            check_contiguous_data(tiff, level, plan.pages, self.path)
            return ContiguousLevel(plan, dtype, self._files[id(tiff)], level.dataoffset, file_dtype)
        # Resolving pages now, single-threaded, keeps tifffile's file handle out of read_region.
        pages = list(level)
        check_segment_tables(pages, plan.grid, self.path)
        check_paged_data(tiff, pages, self.path)
        for page in pages:
            if page is not None and id(page.parent) not in self._files:
                self._files[id(page.parent)] = PixelFile(page.parent.filehandle.path)
        reader = PagedLevel(plan, dtype, pages, self._files, keyframe, file_dtype, cache)
        if not reader.reads_rows:
            check_segment_size(plan.grid, file_dtype.itemsize, self.path)
        return reader

    def files(self) -> tuple[str, ...]:
        return self._paths

    def read_region(self, level: int, region: tuple[slice, ...]) -> np.ndarray:
        if not self._files:
            raise SourceError(f"source is closed: {self.path}")
        reader = self._levels[level]
        if len(region) != len(reader.plan.shape):
            raise ValueError(f"region has {len(region)} axes, the image has {len(reader.plan.shape)}")
        return reader.read(region)

    def _check_open(self) -> None:
        if not self._files:
            raise SourceError(f"source is closed: {self.path}")

    def close(self) -> None:
        for file in self._files.values():
            file.close()
        self._files.clear()
        self._levels.clear()  # with them the decoded segments they cached
        self._native.clear()
        if self._tiff is not None:
            self._tiff.close()
