"""HDF5 filter pipelines: how a stored chunk decodes in zarrfs's own threads, and which pipelines a standard
Zarr codec reads as they are stored (pass-through).

HDF5 applies a dataset's filters in order when writing a chunk, and records in each chunk's filter mask the
optional filters it skipped (a compressor that did not shrink the chunk). Decoding runs the applied filters in
reverse. Filters decoded here: deflate (zlib streams), shuffle, fletcher32 (a checksum appended), LZF,
LZ4 (hdf5plugin's framing) and zstd and blosc (self-describing frames). Any other filter HDF5 itself can run
(szip, n-bit, scale-offset, hdf5plugin's bitshuffle, zfp, ...) is decoded by reading through h5py instead,
serialised under its lock; a filter neither can run is refused at open with the plugin to install.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import h5py

from zarrfs.errors import SourceError
from zarrfs.sources.base import CodecConfig

DEFLATE, SHUFFLE, FLETCHER32 = 1, 2, 3
LZF, BLOSC, LZ4, ZSTD = 32000, 32001, 32004, 32015

# Filters hdf5plugin registers with HDF5 once imported, by id: the names users know them by.
HDF5PLUGIN_FILTERS = {
    307: "bzip2",
    32001: "blosc",
    32004: "lz4",
    32008: "bitshuffle",
    32013: "zfp",
    32015: "zstd",
    32017: "sz",
    32018: "fcidecomp",
    32024: "sz3",
    32026: "blosc2",
    32028: "sperr",
}


@dataclass(frozen=True)
class Filter:
    """One filter of a dataset's pipeline, as its creation property list records it."""

    id: int
    values: tuple[int, ...]  # the filter's client data (e.g. shuffle's element size)
    name: str


def pipeline(dataset: h5py.Dataset) -> tuple[Filter, ...]:
    plist = dataset.id.get_create_plist()
    filters = []
    for index in range(plist.get_nfilters()):
        code, _flags, values, name = plist.get_filter(index)
        filters.append(
            Filter(int(code), tuple(int(value) for value in values), name.decode(errors="replace"))
        )
    return tuple(filters)


def describe(filters: Sequence[Filter]) -> str:
    """The pipeline for `zarrfs info`, e.g. "shuffle + deflate"."""
    return " + ".join(f.name or f"filter {f.id}" for f in filters) or "no filters"


def check_available(filters: Sequence[Filter], what: str) -> None:
    """Refuse, with the plugin to install, a filter neither zarrfs nor the HDF5 library can decode."""
    for item in filters:
        if _step(item, 0) is not None or h5py.h5z.filter_avail(item.id):
            continue
        name = HDF5PLUGIN_FILTERS.get(item.id)
        if name is not None:
            remedy = f"install hdf5plugin (pip install hdf5plugin), which provides the {name} filter"
        else:
            label = f" ({item.name})" if item.name else ""
            remedy = f"install the HDF5 plugin for filter {item.id}{label} and point HDF5_PLUGIN_PATH at it"
        raise SourceError(f"cannot decode {what}: it uses HDF5 filter {item.id}{_named(item)}; {remedy}")


def _named(item: Filter) -> str:
    name = HDF5PLUGIN_FILTERS.get(item.id) or item.name
    return f" ({name})" if name else ""


Step = Callable[[bytes], bytes]


def _step(item: Filter, chunk_nbytes: int) -> Step | None:
    """Undo one filter, or None where only the HDF5 library can."""
    if item.id == DEFLATE:
        return _numcodecs({"id": "zlib"})
    if item.id == SHUFFLE:
        return _numcodecs({"id": "shuffle", "elementsize": item.values[0] if item.values else 1})
    if item.id == FLETCHER32:
        return lambda data: data[:-4]  # the checksum HDF5 appended
    if item.id == ZSTD:
        return _numcodecs({"id": "zstd"})
    if item.id == BLOSC:
        return _numcodecs({"id": "blosc"})
    if item.id == LZF:
        import imagecodecs

        return lambda data: bytes(imagecodecs.lzf_decode(data, out=chunk_nbytes))
    if item.id == LZ4:
        import imagecodecs

        return lambda data: bytes(imagecodecs.lz4h5_decode(data))
    return None


def _numcodecs(config: dict[str, Any]) -> Step:
    import numcodecs

    codec = numcodecs.get_codec(config)
    return lambda data: bytes(codec.decode(data))


@dataclass(frozen=True)
class Decoder:
    """Decodes one dataset's stored chunks in the calling thread."""

    steps: tuple[Step, ...]  # in pipeline order

    def decode(self, data: bytes, mask: int) -> bytes:
        """``data`` as stored, with the filters whose bit is clear in the chunk's filter ``mask`` undone."""
        for position in reversed(range(len(self.steps))):
            if not mask & (1 << position):
                data = self.steps[position](data)
        return data


def decoder(filters: Sequence[Filter], chunk_nbytes: int) -> Decoder | None:
    """A decoder for the pipeline, or None where a filter needs the HDF5 library."""
    steps = [_step(item, chunk_nbytes) for item in filters]
    if any(step is None for step in steps):
        return None
    return Decoder(tuple(step for step in steps if step is not None))


@dataclass(frozen=True)
class StoredCodec:
    """How a standard Zarr codec chain reads stored chunks as they are: numcodecs filters, then a codec."""

    codec: CodecConfig | None  # None: no compression
    filters: tuple[CodecConfig, ...]


def stored_codec(filters: Sequence[Filter]) -> StoredCodec | None:
    """The Zarr codec chain that decodes the pipeline's chunks unchanged, or None where there is none: no
    filter (raw), deflate (zlib), zstd, each optionally after shuffle."""
    remaining = list(filters)
    shuffle: tuple[CodecConfig, ...] = ()
    if remaining and remaining[0].id == SHUFFLE:
        element_size = remaining[0].values[0] if remaining[0].values else 1
        shuffle = ({"id": "shuffle", "elementsize": element_size},)
        remaining.pop(0)
    if not remaining:
        return StoredCodec(None, shuffle)
    if len(remaining) == 1 and remaining[0].id in (DEFLATE, ZSTD):
        return StoredCodec({"id": "zlib" if remaining[0].id == DEFLATE else "zstd"}, shuffle)
    return None
