"""The small contract every native-format reader implements.

A source presents one image in canonical NGFF axis order: a subset of ``t, c, z, y, x`` kept in that order and
always ending in ``y, x``. Readers translate their native layout (page order, interleaved samples, byte order,
x-fastest volumes) to that view; the core never sees format details.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from zarrfs.sources.remote.urls import is_url

CANONICAL_AXES = "tczyx"

# A numcodecs codec configuration, e.g. {"id": "zlib", "level": 1}: how stored bytes decode.
CodecConfig = Mapping[str, Any]


@dataclass(frozen=True)
class PhysicalSize:
    """A length or time along an axis (the size of one pixel step, or a position); ``unit`` is a UDUNITS-2
    name (``micrometer``) or None."""

    value: float
    unit: str | None = None


@dataclass(frozen=True)
class Channel:
    """What the source says about one channel; None means unknown (the core picks defaults)."""

    name: str | None = None
    color: str | None = None  # "RRGGBB"


@dataclass(frozen=True)
class Level:
    """One stored resolution level.

    ``storage_unit`` is the block the source decodes in one piece (a tile, a strip band, one plane, an HDF5
    chunk), per axis in canonical order; chunk shapes that are whole multiples of it never decode a block for
    two chunks.
    """

    shape: tuple[int, ...]
    storage_unit: tuple[int, ...]


@dataclass(frozen=True)
class NativeBlocks:
    """Stored blocks of a level that a standard codec decodes as they are: servable unchanged.

    ``block_shape`` is per canonical axis and may be deeper than one plane (HDF5 and Zarr chunks are 3-D);
    every block is full-size (edge blocks padded, as TIFF tiles are). ``codec`` is the numcodecs
    configuration that decodes a stored block (None: stored raw); ``filters`` are numcodecs configurations
    undone after it, last first, as Zarr v2 decodes its ``filters`` (HDF5's shuffle before deflate). The
    decoded bytes are the block's pixels in C order, little-endian.
    """

    block_shape: tuple[int, ...]
    codec: CodecConfig | None  # given as a config, or as a bare codec id ("zlib"; "none" for raw)
    filters: tuple[CodecConfig, ...]

    def __init__(
        self,
        block_shape: tuple[int, ...],
        codec: CodecConfig | str | None,
        filters: tuple[CodecConfig, ...] = (),
    ) -> None:
        if isinstance(codec, str):
            codec = None if codec == "none" else {"id": codec}
        object.__setattr__(self, "block_shape", tuple(block_shape))
        object.__setattr__(self, "codec", None if codec is None else MappingProxyType(dict(codec)))
        object.__setattr__(self, "filters", tuple(MappingProxyType(dict(item)) for item in filters))

    @property
    def codec_id(self) -> str:
        """The codec's numcodecs id, or "none" for raw blocks."""
        return "none" if self.codec is None else str(self.codec["id"])


@dataclass(frozen=True)
class SourceInfo:
    """Everything the core needs to know about a source, read at open time from metadata only."""

    axes: str  # e.g. "czyx": canonical order, subset of CANONICAL_AXES, ends with "yx"
    dtype: np.dtype  # native byte order; read_region returns arrays of exactly this dtype
    levels: Sequence[Level]  # level 0 = full resolution, then stored reduced levels (if any)
    physical_sizes: Mapping[str, PhysicalSize] = field(default_factory=dict)  # axis letter -> size
    channels: Sequence[Channel] = ()  # one per index of the "c" axis, if present
    description: str = ""  # one line for `zarrfs info`, e.g. "OME-TIFF, BigTIFF, tiled 256x256, deflate"
    # What pixels the source never wrote hold (sparse tiles, missing planes, padding): also the served
    # arrays' fill value. None means 0 (False for booleans).
    fill_value: int | float | bool | complex | None = None
    # Where the centre of level 0's first pixel lies, per axis (a subset of the spatial and time axes), in the
    # unit of ``physical_sizes``: served as the NGFF translation on axes whose pixel size has the same unit.
    # Empty when the source states no origin, or one NGFF cannot express (a rotated or flipped grid).
    origin: Mapping[str, PhysicalSize] = field(default_factory=dict)
    # Format-specific metadata written into the image group's attributes beside the NGFF keys (e.g. a NIfTI
    # header under "nifti"): small, JSON-serialisable, never overriding an NGFF key.
    attributes: Mapping[str, Any] = field(default_factory=dict)
    # What the reader ignored or assumed in the metadata, one line each, for `zarrfs info` (e.g. a resolution
    # that a writer puts in when it knows none, taken as no pixel size).
    notes: Sequence[str] = ()

    @property
    def fill(self) -> int | float | bool | complex:
        """The fill value as a number of ``dtype``."""
        value = 0 if self.fill_value is None else self.fill_value
        result: int | float | bool | complex = self.dtype.type(value).item()
        return result


class ImageSource(ABC):
    """A read-only image in canonical axis order. Implementations must be thread-safe in ``read_region``."""

    path: str  # what the user named (a file, a directory, a pattern), for messages and the tree's name
    info: SourceInfo

    @abstractmethod
    def read_region(self, level: int, region: tuple[slice, ...]) -> np.ndarray:
        """Return the pixels of ``region`` (one ``slice(start, stop)`` per axis of ``info.axes``, inside
        the level's shape, step 1) as an array of exactly that shape and ``info.dtype``.

        Raises SourceError (or any exception) when the data cannot be read or decoded; the caller turns it
        into an I/O error for the one chunk that needed it.
        """

    def files(self) -> tuple[str, ...]:
        """Every file the source reads pixels or metadata from, as absolute paths (or URLs as shown). The
        default is the one file at ``path``."""
        return (self.path if is_url(self.path) else os.path.abspath(self.path),)

    def watched_files(self) -> Sequence[str]:
        """The files the core checks for changes after every read of the source (``files()``, the default).
        A source of so many files that checking them all per read would cost more than the read (a sequence
        of thousands) checks the files each read uses itself, and returns none here."""
        return self.files()

    def problems(self) -> list[str]:
        """What is wrong with files the source would only open on a first read (``zarrfs info --check``
        opens them all now), one line each; empty (the default) for a source that opens everything at once."""
        return []

    def native_blocks(self, level: int) -> NativeBlocks | None:
        """The level's blocks that can be served unchanged, or None (the default) when none can."""
        return None

    def read_native_block(self, level: int, index: tuple[int, ...]) -> bytes | None:
        """The stored bytes of block ``index`` (in the grid of ``native_blocks(level).block_shape``), or None
        when the file stores no data for it (a sparse block: the caller serves fill values)."""
        raise NotImplementedError(f"{type(self).__name__} has no native blocks")

    @abstractmethod
    def close(self) -> None:
        """Release file handles. Reads after close raise SourceError."""

    def __enter__(self) -> ImageSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
