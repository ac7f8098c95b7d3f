"""An HDF5 image as served: canonical axes, and per level which datasets hold which part of it.

A level is either one dataset holding every axis (in any stored order, transposed on read), or a grid of
datasets along leading canonical axes (Imaris and BigDataViewer keep one 3-D dataset per time point and
channel), each holding the remaining axes.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from zarrfs.sources.base import Channel, NativeBlocks, PhysicalSize
from zarrfs.sources.hdf5.stored import ChunkedData, Region, StoredData


@dataclass(frozen=True)
class Piece:
    """One dataset serving the inner canonical axes of a level: ``order[i]`` is the stored axis of inner
    canonical axis ``i``."""

    data: StoredData
    order: tuple[int, ...]

    def read(self, region: Region) -> np.ndarray:
        stored: list[slice] = [slice(0, 0)] * len(self.order)
        for canonical, axis in enumerate(self.order):
            stored[axis] = region[canonical]
        return self.data.read(tuple(stored)).transpose(self.order)

    @property
    def in_stored_order(self) -> bool:
        return self.order == tuple(range(len(self.order)))


@dataclass(frozen=True)
class LevelPlan:
    shape: tuple[int, ...]  # canonical
    outer: int  # how many leading canonical axes pick the piece
    pieces: Mapping[tuple[int, ...], Piece]  # by index along the outer axes; a missing one is all fill
    fill: object

    @property
    def storage_unit(self) -> tuple[int, ...]:
        """One piece deep on the outer axes, one HDF5 chunk (in canonical order) on the others."""
        piece = next(iter(self.pieces.values()), None)
        chunks = None if piece is None else piece.data.chunk_shape
        inner = len(self.shape) - self.outer
        if chunks is None:
            return (1,) * len(self.shape)
        assert piece is not None
        return (1,) * self.outer + tuple(chunks[axis] for axis in piece.order[:inner])

    def read(self, region: Region, dtype: np.dtype) -> np.ndarray:
        outer, inner = region[: self.outer], region[self.outer :]
        if not outer:
            return self.pieces[()].read(inner)
        out = np.empty(tuple(part.stop - part.start for part in region), dtype)
        for index in itertools.product(*(range(part.start, part.stop) for part in outer)):
            target = out[tuple(i - part.start for i, part in zip(index, outer, strict=True))]
            piece = self.pieces.get(index)
            if piece is None:
                target[...] = self.fill
            else:
                target[...] = piece.read(inner)
        return out

    def native_blocks(self) -> NativeBlocks | None:
        """The stored chunks as blocks, where every piece stores chunks of one shape in stored order that a
        standard codec chain reads as they are."""
        pieces = list(self.pieces.values())
        if not pieces or not all(isinstance(p.data, ChunkedData) and p.in_stored_order for p in pieces):
            return None
        codec, chunk_shape = pieces[0].data.stored_codec, pieces[0].data.chunk_shape
        if codec is None or chunk_shape is None:
            return None
        if any(p.data.stored_codec != codec or p.data.chunk_shape != chunk_shape for p in pieces):
            return None
        return NativeBlocks((1,) * self.outer + tuple(chunk_shape), codec.codec, codec.filters)

    def read_native(self, index: Sequence[int]) -> bytes | None:
        if len(index) != len(self.shape):
            raise IndexError(
                f"block index {tuple(index)} has {len(index)} axes, the level has {len(self.shape)}"
            )
        outer = tuple(index[: self.outer])
        if not all(0 <= i < n for i, n in zip(outer, self.shape, strict=False)):
            raise IndexError(f"block index {tuple(index)} is outside the level's grid")
        piece = self.pieces.get(outer)
        return None if piece is None else piece.data.read_native(index[self.outer :])


@dataclass
class ImagePlan:
    """Everything a layout recognised, ready to serve."""

    kind: str  # "Imaris", "BigDataViewer", "3D-PLI", "HDF5"
    axes: str
    levels: list[LevelPlan]
    dtype: np.dtype
    physical_sizes: dict[str, PhysicalSize] = field(default_factory=dict)
    channels: list[Channel] = field(default_factory=list)
    details: str = ""  # for the description: where the pixels are
    dtype_note: str = ""  # for the description: how the stored numbers are read, where not as stored
    companions: tuple[str, ...] = ()  # other files read (a BigDataViewer XML)
