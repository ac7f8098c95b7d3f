"""The small interface every native-format reader implements.

A source presents one image in canonical NGFF axis order: a subset of ``t, c, z, y, x`` kept in that order and
always ending in ``y, x``. Readers translate their native layout (page order, interleaved samples, byte order)
to that view; the core never sees format details.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

CANONICAL_AXES = "tczyx"


@dataclass(frozen=True)
class PhysicalSize:
    """Size of one pixel step along an axis; ``unit`` is a UDUNITS-2 name (``micrometer``) or None."""

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

    ``storage_unit`` is the block the source decodes in one piece (a tile, a strip band, one plane), per axis
    in canonical order; chunk shapes that are whole multiples of it never decode a block for two chunks.
    """

    shape: tuple[int, ...]
    storage_unit: tuple[int, ...]


@dataclass(frozen=True)
class NativeBlocks:
    """Stored blocks of a level that a standard Zarr codec decodes as they are: servable unchanged.

    ``block_shape`` is per canonical axis (1 on t and z; on c 1 too, samples must be stored planar), every
    block full-size (edge blocks padded, as TIFF tiles are); ``codec`` is "none", "zlib" or "zstd" and the
    decoded bytes are the block's pixels in C order, little-endian.
    """

    block_shape: tuple[int, ...]
    codec: str


@dataclass
class SourceInfo:
    """Everything the core needs to know about a source, read at open time from metadata only."""

    axes: str  # e.g. "czyx": canonical order, subset of CANONICAL_AXES, ends with "yx"
    dtype: np.dtype  # native byte order; read_region returns arrays of exactly this dtype
    levels: list[Level]  # level 0 = full resolution, then stored reduced levels (if any)
    physical_sizes: dict[str, PhysicalSize] = field(default_factory=dict)  # axis letter -> size
    channels: list[Channel] = field(default_factory=list)  # one per index of the "c" axis, if present
    description: str = ""  # one line for `zarrfs info`, e.g. "OME-TIFF, BigTIFF, tiled 256x256, deflate"


class ImageSource(ABC):
    """A read-only image in canonical axis order. Implementations must be thread-safe in ``read_region``."""

    path: str
    info: SourceInfo

    @abstractmethod
    def read_region(self, level: int, region: tuple[slice, ...]) -> np.ndarray:
        """Return the pixels of ``region`` (one ``slice(start, stop)`` per axis of ``info.axes``, inside
        the level's shape, step 1) as an array of exactly that shape and ``info.dtype``.

        Raises SourceError (or any exception) when the data cannot be read or decoded; the caller turns it
        into an I/O error for the one chunk that needed it.
        """

    def files(self) -> list[str]:
        """Every file whose bytes the reads may use, ``path`` first: the files watched for changes while the
        source is served. The default is ``path`` alone."""
        return [self.path]

    def native_blocks(self, level: int) -> NativeBlocks | None:
        """The level's blocks that can be served unchanged, or None (the default) when none can."""
        return None

    def read_native_block(self, level: int, index: tuple[int, ...]) -> bytes | None:
        """The stored bytes of block ``index`` (in the grid of ``native_blocks(level).block_shape``), or None
        when the file stores no data for it (a sparse block: the caller serves fill values)."""
        raise NotImplementedError(f"{type(self).__name__} has no native blocks")

    @abstractmethod
    def close(self) -> None:
        """Release file handles."""

    def __enter__(self) -> ImageSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
