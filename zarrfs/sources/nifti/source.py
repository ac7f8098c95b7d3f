"""The NIfTI image source: a header read at open, then the rows a region needs read by offset."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Protocol

import numpy as np

from zarrfs.errors import SourceError
from zarrfs.sources.base import ImageSource, Level, SourceInfo
from zarrfs.sources.nifti.gzindex import GZIP_MAGIC, GzipStream, gunzip_prefix, span_bytes
from zarrfs.sources.nifti.header import NiftiImage, VoxelLayout, parse_header
from zarrfs.sources.nifti.signature import SIGNATURE_BYTES, header_bytes, nifti_version
from zarrfs.sources.pixelfile import PixelFile, SourceFile

log = logging.getLogger(__name__)

DEFAULT_BLOCK_CACHE_BYTES = 128 * 2**20


class RowReader(Protocol):
    """Where voxel bytes come from: the file itself (a SourceFile) or its decompressed stream (GzipStream)."""

    def read_rows_into(self, rows: np.ndarray, offset: int, row_stride: int) -> None: ...


class NiftiSource(ImageSource):
    """One NIfTI-1 or NIfTI-2 file, plain or gzipped. Opening reads the header only; ``read_region`` reads
    the rows of the region, from any number of threads, without a lock (gzip spans are shared through
    their cache)."""

    def __init__(
        self, path: str, *, block_cache_bytes: int = DEFAULT_BLOCK_CACHE_BYTES, file: SourceFile | None = None
    ) -> None:
        """``file``: where the bytes are, when not in the local file ``path`` (an object at a URL)."""
        self.path = path
        self._file: SourceFile | None = PixelFile(path) if file is None else file
        try:
            self._rows, self.image, description = self._open(self._file, block_cache_bytes)
        except BaseException:
            self.close()
            raise
        layout = self.image.layout
        self.info = SourceInfo(
            axes=self.image.axes,
            dtype=self.image.dtype,
            levels=[Level(layout.shape, layout.storage_unit)],
            physical_sizes=self.image.physical_sizes,
            origin=self.image.origin,
            attributes={"nifti": self.image.header},
            description=description,
        )

    def _open(self, file: SourceFile, block_cache_bytes: int) -> tuple[RowReader, NiftiImage, str]:
        read = file.pread

        gzipped = read(len(GZIP_MAGIC), 0) == GZIP_MAGIC
        prefix = gunzip_prefix(read, SIGNATURE_BYTES) if gzipped else read(SIGNATURE_BYTES, 0)
        version = nifti_version(prefix)
        if version is None:
            raise SourceError(f"not a NIfTI-1 or NIfTI-2 file (no n+1 or n+2 header): {self.path}")
        size = header_bytes(version)
        raw = gunzip_prefix(read, size) if gzipped else read(size, 0)
        if len(raw) < size:
            raise SourceError(f"NIfTI file is truncated inside its {size}-byte header: {self.path}")
        image = parse_header(raw, version, self.path)
        layout = image.layout
        if gzipped:
            span = span_bytes(layout.end)
            description = f"{image.description}, gzip (seek points every {span // 2**20} MiB)"
            return GzipStream(file, span, block_cache_bytes), image, description
        if layout.offset >= file.size:
            size = file.size
            raise SourceError(
                f"NIfTI vox_offset {layout.offset} is past the end of the file ({size} bytes): {self.path}"
            )
        if layout.end > file.size:
            log.warning(
                "NIfTI voxels end at byte %d but the file has %d bytes: reads past it fail: %s",
                layout.end,
                file.size,
                self.path,
            )
        return file, image, image.description

    def read_region(self, level: int, region: tuple[slice, ...]) -> np.ndarray:
        if self._file is None:
            raise SourceError(f"source is closed: {self.path}")
        if level != 0:
            raise IndexError(f"level {level} does not exist: a NIfTI image has one level")
        layout = self.image.layout
        if len(region) != len(layout.order):
            raise ValueError(f"region has {len(region)} axes, the image has {len(layout.order)}")
        file_region = layout.file_region(region)
        raw = np.empty(tuple(part.stop - part.start for part in file_region), layout.file_dtype)
        buffer = raw.reshape(-1).view(np.uint8)
        position = 0
        for offset, count, length, row_stride in _row_groups(layout, file_region):
            rows = buffer[position : position + count * length].reshape(count, length)
            self._rows.read_rows_into(rows, offset, row_stride)
            position += count * length
        return self._canonical(raw)

    def _canonical(self, raw: np.ndarray) -> np.ndarray:
        """File-order voxels as served: in canonical axis order, native byte order, scaled."""
        layout, scaling = self.image.layout, self.image.scaling
        values = raw if scaling is None else scaling.apply(raw.astype(raw.dtype.newbyteorder("=")))
        return np.ascontiguousarray(values.transpose(layout.order), dtype=self.image.dtype)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _row_groups(layout: VoxelLayout, region: tuple[slice, ...]) -> Iterator[tuple[int, int, int, int]]:
    """The file bytes of ``region`` (in file axis order) as (offset, rows, row length, row stride) groups,
    in the order the region's C-order array holds them. A row is the longest run the region reads
    contiguously: the inner axes it covers whole, and the region along the first one it does not."""
    shape, strides = layout.file_shape, layout.byte_strides
    starts = [part.start for part in region]
    extents = [part.stop - part.start for part in region]
    inner = len(shape) - 1
    while inner > 0 and extents[inner] == shape[inner]:
        inner -= 1
    length = extents[inner] * strides[inner]
    base = layout.offset + sum(start * stride for start, stride in zip(starts, strides, strict=True))
    if inner == 0:
        yield base, 1, length, length
        return
    row_axis = inner - 1
    for index in np.ndindex(*extents[:row_axis]):
        offset = base + sum(step * stride for step, stride in zip(index, strides, strict=False))
        yield offset, extents[row_axis], length, strides[row_axis]
