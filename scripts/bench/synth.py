"""Pixels of the generated images, tile by tile from smooth separable fields plus noise, so memory stays
bounded whatever the image size."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

TILE = 256


class Waves:
    """``terms`` smooth 1-D profiles, each a sum of three sinusoids with random frequency and phase."""

    def __init__(self, rng: np.random.Generator, terms: int = 4, period: float = 300.0) -> None:
        self.freq = rng.uniform(0.5, 3.0, (terms, 3)) / period
        self.phase = rng.uniform(0.0, 2 * np.pi, (terms, 3))

    def __call__(self, coords: np.ndarray) -> np.ndarray:
        angles = coords[None, None, :] * self.freq[:, :, None] + self.phase[:, :, None]
        return np.sin(angles).sum(axis=1).astype(np.float32)  # (terms, len(coords))


class Field:
    """A smooth 2-D (or 3-D) field: sum over terms of u(y) * v(x) (* w(z)); structures where it is high."""

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.u, self.v, self.w = Waves(rng), Waves(rng), Waves(rng, period=40.0)
        self.noise = rng.normal(0.0, 6.0, 2**23).astype(np.float32)

    def raw(self, rows: np.ndarray, columns: np.ndarray, z: float | None = None) -> np.ndarray:
        u = self.u(rows.astype(np.float64))
        if z is not None:
            u = u * self.w(np.array([z], dtype=np.float64))[:, :1]
        return u.T @ self.v(columns.astype(np.float64))

    def noise_like(self, shape: tuple[int, ...], key: int) -> np.ndarray:
        size = math.prod(shape)
        offset = (key * 2654435761) % (self.noise.size - size)
        return self.noise[offset : offset + size].reshape(shape)

    def intensity(
        self, rows: np.ndarray, columns: np.ndarray, key: int, z: float | None = None
    ) -> np.ndarray:
        """uint16 microscopy-like pixels: dim background, bright smooth blobs, Gaussian noise."""
        s = self.raw(rows, columns, z)
        np.maximum(s, 0, out=s)
        s *= s
        s *= 200.0
        s += 100.0
        s += self.noise_like(s.shape, key)
        return np.clip(s, 0, 65535).astype(np.uint16)


def _tile_coords(index: int, step: int = 1) -> np.ndarray:
    """Level-0 coordinates of the pixels of tile ``index`` of a level reduced ``step`` times."""
    return (np.arange(index * TILE, (index + 1) * TILE) * step + (step - 1) / 2).astype(np.float64)


def plane_tiles(field_: Field, side: int) -> Iterator[np.ndarray]:
    tiles = math.ceil(side / TILE)
    for i in range(tiles):
        rows = _tile_coords(i)
        for j in range(tiles):
            yield field_.intensity(rows, _tile_coords(j), key=i * tiles + j)


def stack_planes(field_: Field, shape: tuple[int, int, int]) -> Iterator[np.ndarray]:
    depth, height, width = shape
    rows, columns = np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64)
    for z in range(depth):
        yield field_.intensity(rows, columns, key=z, z=float(z))


def slide_tiles(field_: Field, side: int, step: int) -> Iterator[np.ndarray]:
    """RGB uint8 tiles of a slide-like image reduced ``step`` times: stained tissue on a bright background."""
    background = np.array([242.0, 240.0, 245.0], dtype=np.float32)
    stroma = np.array([225.0, 140.0, 185.0], dtype=np.float32)
    nuclei = np.array([95.0, 60.0, 150.0], dtype=np.float32)
    tiles = math.ceil(side / TILE)
    for i in range(tiles):
        rows = _tile_coords(i, step)
        for j in range(tiles):
            s = field_.raw(rows, _tile_coords(j, step))
            tissue = np.clip((s - 0.5) / 3.0, 0.0, 1.0)[..., None]
            dense = np.clip((s - 5.0) / 2.0, 0.0, 1.0)[..., None]
            rgb = background + tissue * (stroma - background) + dense * (nuclei - stroma)
            rgb += field_.noise_like((TILE, TILE, 1), key=i * tiles + j + step * 7919) * 0.7
            yield np.clip(rgb, 0, 255).astype(np.uint8)


def sparse_block_start(side: int, block: int) -> int:
    """Index of the first tile row (and column) of the written central ``block`` x ``block`` square."""
    return (math.ceil(side / TILE) - block) // 2


def sparse_tiles(field_: Field, side: int, block: int) -> Iterator[np.ndarray | None]:
    """Tiles of the central ``block`` x ``block`` square and the first tile (tifffile needs the first item of
    the iterator to be an array); None, so not stored at all, everywhere else."""
    tiles = math.ceil(side / TILE)
    first = sparse_block_start(side, block)
    for i in range(tiles):
        inside_rows = first <= i < first + block
        rows = _tile_coords(i) if inside_rows or i == 0 else None
        for j in range(tiles):
            if rows is not None and ((inside_rows and first <= j < first + block) or i == j == 0):
                yield field_.intensity(rows, _tile_coords(j), key=i * tiles + j)
            else:
                yield None
