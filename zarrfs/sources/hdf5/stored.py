"""Pixels of one HDF5 dataset, read without h5py where the layout allows: regions in stored axis order.

Chunked datasets: chunk locations are listed once, on the first read (one pass over HDF5's chunk index),
then each chunk is one ``os.pread`` and a decode in the calling thread, so any number of threads read at once
(h5py serialises every call under one global lock). Contiguous datasets: rows are read straight from the
file. Compact, external and virtual datasets, and filters only the HDF5 library runs, are read through h5py.
"""

from __future__ import annotations

import itertools
import math
import threading
from abc import ABC, abstractmethod
from array import array
from collections.abc import Sequence
from dataclasses import dataclass

import h5py
import numpy as np

from zarrfs.errors import SourceError, one_line
from zarrfs.lru import ByteLRUCache
from zarrfs.sources.hdf5.filters import Decoder, StoredCodec, check_available, decoder, pipeline, stored_codec
from zarrfs.sources.pixelfile import SourceFile

Region = tuple[slice, ...]
# A stored chunk may exceed its decoded size (codecs expand incompressible data by a few bytes); beyond this,
# its byte count is corrupt and is refused before anything is allocated for it.
STORED_GROWTH = 4
STORED_SLACK_BYTES = 2**20


def blocks_touched(start: int, stop: int, block: int) -> range:
    """The numbers of the blocks of size ``block`` that indices start..stop-1 fall in."""
    return range(start // block, (stop - 1) // block + 1)


def decoded_cache(capacity_bytes: int) -> ByteLRUCache[np.ndarray]:
    """Decoded chunks that more than one region needs (an HDF5 chunk larger than the served chunk)."""
    return ByteLRUCache(capacity_bytes, sizeof=lambda chunk: chunk.nbytes, keep_oversized=True)


@dataclass(frozen=True)
class Served:
    """What is served of one dataset: its first ``shape`` elements (Imaris pads its arrays) in stored order,
    as ``dtype`` (native byte order; the stored numbers reinterpreted where a format says so), ``fill`` where
    the file wrote nothing."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fill: object


class StoredData(ABC):
    """One dataset's pixels, as ``served`` says."""

    def __init__(self, dataset: h5py.Dataset, served: Served) -> None:
        self.name = dataset.name
        self.shape = served.shape
        self.dtype = served.dtype
        self.fill = served.fill
        # The stored numbers as the served dtype, in the file's byte order.
        self.file_dtype = served.dtype.newbyteorder(dataset.dtype.byteorder)

    @property
    def chunk_shape(self) -> tuple[int, ...] | None:
        """The block read in one piece (HDF5 chunks), or None where any region is read as cheaply."""
        return None

    @property
    def stored_codec(self) -> StoredCodec | None:
        """The Zarr codec chain reading this dataset's stored chunks as they are, if any."""
        return None

    @abstractmethod
    def read(self, region: Region) -> np.ndarray:
        """The pixels of ``region`` (stored order, inside ``shape``), of ``dtype``."""

    def read_native(self, index: Sequence[int]) -> bytes | None:
        raise ValueError(f"dataset {self.name} has no stored chunks to pass through")


@dataclass(frozen=True)
class ChunkTable:
    """Where the allocated chunks are: by flat chunk number, sorted (memory per allocated chunk, not per
    chunk of the grid: a sparse dataset of millions of chunks stores few)."""

    numbers: np.ndarray  # int64, sorted
    offsets: np.ndarray  # int64 byte offsets
    sizes: np.ndarray  # int64 stored byte counts
    masks: np.ndarray  # uint32 filter masks

    def find(self, number: int) -> tuple[int, int, int] | None:
        position = int(np.searchsorted(self.numbers, number))
        if position == len(self.numbers) or self.numbers[position] != number:
            return None
        return int(self.offsets[position]), int(self.sizes[position]), int(self.masks[position])


def list_chunks(dataset: h5py.Dataset, grid: tuple[int, ...], chunks: tuple[int, ...]) -> ChunkTable:
    """Every allocated chunk of ``dataset``, in one pass over HDF5's chunk index."""
    numbers, offsets, sizes, masks = array("q"), array("q"), array("q"), array("L")

    def note(info: h5py.h5d.StoreInfo) -> None:
        index = tuple(offset // chunk for offset, chunk in zip(info.chunk_offset, chunks, strict=True))
        numbers.append(int(np.ravel_multi_index(index, grid)))
        offsets.append(info.byte_offset)
        sizes.append(info.size)
        masks.append(info.filter_mask)

    if hasattr(dataset.id, "chunk_iter"):
        dataset.id.chunk_iter(note)
    else:  # HDF5 before 1.12.3: one call per chunk
        for position in range(dataset.id.get_num_chunks()):
            note(dataset.id.get_chunk_info(position))
    order = np.argsort(np.frombuffer(numbers, np.int64), kind="stable")
    return ChunkTable(
        np.frombuffer(numbers, np.int64)[order],
        np.frombuffer(offsets, np.int64)[order],
        np.frombuffer(sizes, np.int64)[order],
        np.asarray(masks, np.uint32)[order],
    )


class ChunkedData(StoredData):
    """A chunked dataset whose filters zarrfs decodes itself."""

    def __init__(
        self,
        dataset: h5py.Dataset,
        served: Served,
        file: SourceFile,
        decoder: Decoder,
        codec: StoredCodec | None,
        cache: ByteLRUCache[np.ndarray],
    ) -> None:
        super().__init__(dataset, served)
        self._dataset = dataset
        self._chunks: tuple[int, ...] = tuple(dataset.chunks)
        self._grid = tuple(
            math.ceil(extent / chunk) for extent, chunk in zip(dataset.shape, self._chunks, strict=True)
        )
        self._file = file
        self._decoder = decoder
        self._codec = codec
        self._cache = cache
        self._chunk_nbytes = math.prod(self._chunks) * self.file_dtype.itemsize
        self._max_stored = STORED_GROWTH * self._chunk_nbytes + STORED_SLACK_BYTES
        self._table: ChunkTable | None = None
        self._listing = threading.Lock()

    @property
    def chunk_shape(self) -> tuple[int, ...]:
        return self._chunks

    @property
    def stored_codec(self) -> StoredCodec | None:
        return self._codec

    def _chunk_table(self) -> ChunkTable:
        """Listed on first use, once: opening reads metadata only, and most levels are never all read."""
        table = self._table
        if table is None:
            with self._listing:
                if self._table is None:
                    try:
                        self._table = list_chunks(self._dataset, self._grid, self._chunks)
                    except Exception as error:
                        raise SourceError(
                            f"cannot list the chunks of {self.name} ({error}): {self._file.path}"
                        ) from error
                table = self._table
        return table

    def _stored(self, index: Sequence[int]) -> tuple[int, int, int] | None:
        """(offset, byte count, filter mask) of chunk ``index``, or None where no chunk was written."""
        found = self._chunk_table().find(int(np.ravel_multi_index(tuple(index), self._grid)))
        if found is None:
            return None
        offset, size, _ = found
        if size > self._max_stored:
            problem = f"more than such a chunk can take ({self._max_stored} bytes)"
        elif offset + size > self._file.size:
            problem = f"from byte {offset} on, past the end of the file ({self._file.size} bytes)"
        else:
            return found
        raise SourceError(
            f"chunk {tuple(index)} of {self.name} claims {size} bytes, {problem}: {self._file.path}"
        )

    def _decoded(self, index: Sequence[int], stored: tuple[int, int, int]) -> np.ndarray:
        offset, size, mask = stored
        data = self._file.read(size, offset)
        try:
            pixels = self._decoder.decode(data, mask)
        except Exception as error:
            raise SourceError(
                f"cannot decode chunk {tuple(index)} of {self.name} ({error}): {self._file.path}"
            ) from error
        if len(pixels) != self._chunk_nbytes:
            raise SourceError(
                f"chunk {tuple(index)} of {self.name} decodes to {len(pixels)} bytes, not "
                f"{self._chunk_nbytes}: {self._file.path}"
            )
        return np.frombuffer(pixels, self.file_dtype).reshape(self._chunks)

    def _chunk(self, index: tuple[int, ...], shared: bool) -> np.ndarray | None:
        """The decoded chunk, or None where none was written. A ``shared`` chunk, which other regions need
        too, is decoded once and kept in the cache."""
        stored = self._stored(index)
        if stored is None:
            return None
        if not shared:
            return self._decoded(index, stored)
        return self._cache.get_or_compute((id(self), index), lambda: self._decoded(index, stored))

    def read(self, region: Region) -> np.ndarray:
        out = np.empty(tuple(part.stop - part.start for part in region), self.dtype)
        ranges = [
            blocks_touched(part.start, part.stop, chunk)
            for part, chunk in zip(region, self._chunks, strict=True)
        ]
        for index in itertools.product(*ranges):
            origins = [block * chunk for block, chunk in zip(index, self._chunks, strict=True)]
            source, target, covers = [], [], True
            for part, origin, chunk, extent in zip(region, origins, self._chunks, self.shape, strict=True):
                first, stop = max(part.start, origin), min(part.stop, origin + chunk)
                source.append(slice(first - origin, stop - origin))
                target.append(slice(first - part.start, stop - part.start))
                covers = covers and part.start <= origin and min(origin + chunk, extent) <= part.stop
            chunk_pixels = self._chunk(index, shared=not covers)
            if chunk_pixels is None:
                out[tuple(target)] = self.fill
            else:
                out[tuple(target)] = chunk_pixels[tuple(source)]
        return out

    def read_native(self, index: Sequence[int]) -> bytes | None:
        if self._codec is None:
            raise ValueError(f"the chunks of {self.name} cannot pass through")
        grid = tuple(
            math.ceil(extent / chunk) for extent, chunk in zip(self.shape, self._chunks, strict=True)
        )
        if len(index) != len(grid) or not all(0 <= i < n for i, n in zip(index, grid, strict=True)):
            raise IndexError(f"chunk index {tuple(index)} is outside the chunk grid {grid} of {self.name}")
        stored = self._stored(index)
        if stored is None:
            return None
        offset, size, mask = stored
        if mask == 0:
            data: bytes = self._file.read(size, offset)
            return data
        # HDF5 skipped an optional filter for this chunk (it did not compress): encoded again as served.
        return _encode(self._codec, self._decoded(index, stored))


def _encode(codec: StoredCodec, pixels: np.ndarray) -> bytes:
    import numcodecs

    data: object = np.ascontiguousarray(pixels)
    for config in codec.filters:
        data = numcodecs.get_codec(dict(config)).encode(data)
    if codec.codec is not None:
        data = numcodecs.get_codec(dict(codec.codec)).encode(data)
    return bytes(memoryview(data))  # type: ignore[arg-type]


class ContiguousData(StoredData):
    """A contiguous dataset: every row's position is arithmetic on one data offset."""

    def __init__(self, dataset: h5py.Dataset, served: Served, file: SourceFile, offset: int | None) -> None:
        super().__init__(dataset, served)
        self._file = file
        self._offset = offset  # None: never written, all fill
        self._strides = tuple(
            math.prod(dataset.shape[axis + 1 :]) * self.file_dtype.itemsize for axis in range(dataset.ndim)
        )

    def read(self, region: Region) -> np.ndarray:
        shape = tuple(part.stop - part.start for part in region)
        if self._offset is None:
            return np.full(shape, self.fill, self.dtype)
        raw = np.empty(shape, self.file_dtype)
        *outer, rows, columns = region
        row_stride, itemsize = self._strides[-2], self.file_dtype.itemsize
        for position in itertools.product(*(range(part.start, part.stop) for part in outer)):
            offset = self._offset + sum(
                i * stride for i, stride in zip(position, self._strides, strict=False)
            )
            offset += rows.start * row_stride + columns.start * itemsize
            plane = raw[tuple(i - part.start for i, part in zip(position, outer, strict=True))]
            self._file.read_rows_into(plane.view(np.uint8), offset, row_stride)
        return raw if raw.dtype == self.dtype else raw.astype(self.dtype)


class LibraryData(StoredData):
    """Read through h5py (serialised under its lock): compact, external and virtual datasets, and filters
    only the HDF5 library can run."""

    def __init__(self, dataset: h5py.Dataset, served: Served, chunks: tuple[int, ...] | None) -> None:
        super().__init__(dataset, served)
        self._dataset = dataset
        self._chunks = chunks
        self._path = dataset.file.filename

    @property
    def chunk_shape(self) -> tuple[int, ...] | None:
        return self._chunks

    def read(self, region: Region) -> np.ndarray:
        try:
            pixels = np.asarray(self._dataset[region])
        except Exception as error:
            raise SourceError(
                f"cannot read {self.name} through h5py ({one_line(error)}): {self._path}"
            ) from error
        return pixels.view(self.file_dtype).astype(self.dtype, copy=False)


SERVABLE_KINDS = "buif"  # booleans, integers, floats: what NGFF images hold


def open_data(
    dataset: h5py.Dataset,
    file: SourceFile,
    cache: ByteLRUCache[np.ndarray],
    shape: tuple[int, ...] | None = None,
    dtype: np.dtype | None = None,
) -> StoredData:
    """The reader for ``dataset``: of its first ``shape`` elements (default all), served as ``dtype`` (default
    its own, in native byte order). Raises a one-line SourceError for data that cannot be served."""
    path = file.path
    stored_dtype = dataset.dtype
    if stored_dtype.kind not in SERVABLE_KINDS or stored_dtype.shape or stored_dtype.names:
        raise SourceError(f"dataset {dataset.name} holds {stored_dtype}, not numbers zarrfs serves: {path}")
    if 0 in dataset.shape:
        raise SourceError(
            f"dataset {dataset.name} is empty (shape {'x'.join(map(str, dataset.shape))}): {path}"
        )
    as_dtype = np.dtype(dtype if dtype is not None else stored_dtype).newbyteorder("=")
    # The fill value's stored bytes, reinterpreted like the pixels.
    fill = np.array(dataset.fillvalue, stored_dtype).view(as_dtype.newbyteorder(stored_dtype.byteorder))
    served = Served(tuple(dataset.shape) if shape is None else shape, as_dtype, as_dtype.type(fill))
    plist = dataset.id.get_create_plist()
    layout = plist.get_layout()
    filters = pipeline(dataset)
    check_available(filters, f"dataset {dataset.name} of {path}")
    library = dataset.is_virtual or plist.get_external_count() > 0 or layout == h5py.h5d.COMPACT
    if layout == h5py.h5d.CHUNKED and not library:
        chunks = tuple(dataset.chunks)
        chunk_decoder = decoder(filters, math.prod(chunks) * as_dtype.itemsize)
        if chunk_decoder is not None:
            little = as_dtype.itemsize == 1 or stored_dtype.byteorder != ">"
            native = stored_codec(filters) if little else None
            return ChunkedData(dataset, served, file, chunk_decoder, native, cache)
        return LibraryData(dataset, served, chunks)
    if layout == h5py.h5d.CONTIGUOUS and not library:
        offset = dataset.id.get_offset()
        if offset is not None and offset + dataset.id.get_storage_size() > file.size:
            raise SourceError(
                f"file is truncated: dataset {dataset.name} ends at byte "
                f"{offset + dataset.id.get_storage_size()} but the file has {file.size} bytes: {path}"
            )
        return ContiguousData(dataset, served, file, offset)
    return LibraryData(dataset, served, None)
