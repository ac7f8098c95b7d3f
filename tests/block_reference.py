"""The expected pixels of computed levels, written independently of zarrfs: every block of an image gathered
into a row with plain numpy, and integer means taken exactly with Python integers and fractions (no float
rounding, so 64-bit values near 2^64 come out right or the test says so)."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np


def block_rows(image: np.ndarray, factors: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Each block's values in a row (shape ceil(shape / factors) + (block size,), C order inside the block,
    so entry 0 is the block's first pixel), and which entries are real pixels rather than edge padding."""
    grid = tuple(math.ceil(extent / factor) for extent, factor in zip(image.shape, factors, strict=True))
    whole = tuple(n * f for n, f in zip(grid, factors, strict=True))
    inside = tuple(slice(0, extent) for extent in image.shape)
    padded = np.zeros(whole, image.dtype)
    padded[inside] = image
    valid = np.zeros(whole, bool)
    valid[inside] = True
    interleaved = [size for pair in zip(grid, factors, strict=True) for size in pair]
    order = list(range(0, 2 * image.ndim, 2)) + list(range(1, 2 * image.ndim, 2))

    def rows(array: np.ndarray) -> np.ndarray:
        return array.reshape(interleaved).transpose(order).reshape(*grid, -1)

    return rows(padded), rows(valid)


def exact_mean(rows: np.ndarray, valid: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Integers: the exact mean of each row's valid entries, rounded half to even (Python's ``round`` of a
    Fraction); booleans: whether at least half are set; floats: the float64 mean."""
    counts = valid.sum(axis=-1)
    if dtype.kind == "b":
        return 2 * (rows & valid).sum(axis=-1) >= counts
    if dtype.kind not in "iu":
        return (np.where(valid, rows, 0).astype(np.float64).sum(axis=-1) / counts).astype(dtype)
    sums = np.where(valid, rows.astype(object), 0).sum(axis=-1)  # Python integers: no overflow
    rounded = np.frompyfunc(lambda total, count: round(Fraction(int(total), int(count))), 2, 1)
    return np.asarray(rounded(sums, counts), dtype=object).astype(dtype)


def smallest_mode(rows: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """The most frequent valid value of each row, the smallest one on ties."""
    equal = (rows[..., :, None] == rows[..., None, :]) & valid[..., None, :]
    counts = np.where(valid, equal.sum(axis=-1), -1)
    most = counts.max(axis=-1, keepdims=True)
    largest = np.iinfo(rows.dtype).max if rows.dtype.kind in "iu" else np.inf
    return np.where(counts == most, rows, largest).min(axis=-1).astype(rows.dtype)


def block_reduce(image: np.ndarray, factors: tuple[int, ...], method: str) -> np.ndarray:
    """``image`` reduced block by block with ``method`` ("mean", "nearest" or "mode"); edge blocks cut
    short reduce over the pixels they have."""
    if method == "nearest":
        return image[tuple(slice(None, None, factor) for factor in factors)].copy()
    rows, valid = block_rows(image, factors)
    if method == "mean":
        return exact_mean(rows, valid, image.dtype)
    if method == "mode":
        return smallest_mode(rows, valid)
    raise ValueError(method)
