"""Computed resolution levels: each one made from the level above by reducing small blocks of pixels.

A computed level reads its parent only through the parent's cached chunks, never the source, so building the
whole pyramid decodes each stored block once and every level's chunks are made once however many coarser
chunks need them.
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np

from zarrfs.core.levels import PixelLevel
from zarrfs.core.options import DOWNSAMPLE_METHODS, ServeOptions
from zarrfs.sources import PhysicalSize, SourceInfo

# z is halved along with y and x while its pixel step stays within this factor of the x step.
Z_ISOTROPY_TOLERANCE = 1.5

# Length units (NGFF names) convertible to each other, so that z in millimeter compares with x in micrometer.
_METERS_PER_UNIT = {
    "picometer": 1e-12,
    "angstrom": 1e-10,
    "nanometer": 1e-9,
    "micrometer": 1e-6,
    "millimeter": 1e-3,
    "centimeter": 1e-2,
    "decimeter": 1e-1,
    "meter": 1.0,
}


class ComputedLevel(PixelLevel):
    """A level ``factors`` times coarser than ``parent`` per axis, reduced with ``method``
    ("mean", "nearest" or "mode"); its chunks are the parent's, clamped to the smaller shape."""

    def __init__(self, parent: PixelLevel, factors: tuple[int, ...], method: str, name: str) -> None:
        if method not in DOWNSAMPLE_METHODS:
            raise ValueError(f"unknown downsampling method {method!r}")
        if len(factors) != len(parent.shape) or any(factor < 1 for factor in factors):
            raise ValueError(f"factors {factors} do not fit a level of shape {parent.shape}")
        shape = tuple(
            math.ceil(extent / factor) for extent, factor in zip(parent.shape, factors, strict=True)
        )
        chunks = tuple(min(chunk, extent) for chunk, extent in zip(parent.chunks, shape, strict=True))
        super().__init__(name, shape, parent.dtype, chunks, parent.cache, parent.fill_value, parent.fanout)
        self.parent = parent
        self.computed_depth = parent.computed_depth + 1
        self.factors = factors
        self.method = method
        self.downsampling = tuple(
            scale * factor for scale, factor in zip(parent.downsampling, factors, strict=True)
        )
        # "nearest" takes the first pixel of each block, so its pixels keep their parent's centres; "mean" and
        # "mode" summarise the whole block, so their pixels sit at the block's centre.
        self.first_pixel_centre = tuple(
            centre + (0.0 if method == "nearest" else scale * (factor - 1) / 2)
            for centre, scale, factor in zip(
                parent.first_pixel_centre, parent.downsampling, factors, strict=True
            )
        )

    def read_region(self, region: tuple[slice, ...]) -> np.ndarray:
        """Reduces the parent region piece by piece, concurrently: each piece is one parent chunk (or the
        few chunks a block straddles, such as two one-plane chunks when z is halved), so that the pieces need
        not be copied into one array first and the reductions run beside the reads of further pieces."""
        out = np.empty(tuple(part.stop - part.start for part in region), dtype=self.dtype)
        # Along each axis, pieces span whole parent chunks and whole blocks: a multiple of both sizes.
        steps = [
            math.lcm(chunk, factor) for chunk, factor in zip(self.parent.chunks, self.factors, strict=True)
        ]
        parent_region = [
            (part.start * factor, min(part.stop * factor, extent))
            for part, factor, extent in zip(region, self.factors, self.parent.shape, strict=True)
        ]
        pieces_per_axis = [
            [
                (max(start, i * step), min(stop, (i + 1) * step))
                for i in range(start // step, math.ceil(stop / step))
            ]
            for (start, stop), step in zip(parent_region, steps, strict=True)
        ]

        def reduce_piece(piece: tuple[tuple[int, int], ...]) -> None:
            pixels = self._parent_pixels(tuple(slice(lo, hi) for lo, hi in piece))
            target = tuple(
                slice((lo - start) // factor, math.ceil((hi - start) / factor))
                for (lo, hi), (start, _), factor in zip(piece, parent_region, self.factors, strict=True)
            )
            out[target] = downsample(pixels, self.factors, self.method)

        self.fanout.run(
            [functools.partial(reduce_piece, piece) for piece in itertools.product(*pieces_per_axis)]
        )
        return out

    def _parent_pixels(self, region: tuple[slice, ...]) -> np.ndarray:
        """The parent's pixels of ``region``: a view into its cached chunk when one chunk holds them all."""
        index = tuple(part.start // chunk for part, chunk in zip(region, self.parent.chunks, strict=True))
        if any(
            (part.stop - 1) // chunk != i
            for part, chunk, i in zip(region, self.parent.chunks, index, strict=True)
        ):
            return self.parent.read_through_chunks(region)
        have = self.parent.chunk_region(index)
        inside = tuple(
            slice(part.start - h.start, part.stop - h.start) for part, h in zip(region, have, strict=True)
        )
        return self.parent.chunk_pixels(index)[inside]


def downsample(pixels: np.ndarray, factors: tuple[int, ...], method: str) -> np.ndarray:
    """Reduce every ``factors``-sized block of ``pixels`` to one pixel of the same dtype; blocks cut short
    by the edge of the array reduce over the pixels they have. The result has shape ceil(shape / factors).
    """
    out = np.empty(
        tuple(math.ceil(extent / factor) for extent, factor in zip(pixels.shape, factors, strict=True)),
        dtype=pixels.dtype,
    )
    # Along each axis, the whole blocks form one regular part and a short last block another; every
    # combination of parts over the axes is a regular grid of equal blocks, reduced in one vectorized step.
    parts_per_axis = []
    for extent, factor in zip(pixels.shape, factors, strict=True):
        whole_blocks, remainder = divmod(extent, factor)
        parts: list[tuple[slice, slice, int]] = []
        if whole_blocks:
            parts.append((slice(0, whole_blocks * factor), slice(0, whole_blocks), factor))
        if remainder:
            parts.append(
                (slice(extent - remainder, extent), slice(whole_blocks, whole_blocks + 1), remainder)
            )
        parts_per_axis.append(parts)
    for combination in itertools.product(*parts_per_axis):
        source, target, block = zip(*combination, strict=True)
        out[target] = _reduce_equal_blocks(pixels[source], block, method)
    return out


def _reduce_equal_blocks(pixels: np.ndarray, block: tuple[int, ...], method: str) -> np.ndarray:
    """Reduce ``pixels``, whose shape is a whole multiple of ``block``, block by block."""
    if method == "mean" and pixels.dtype.kind in "iu":
        return _integer_mean(pixels, block)
    # One strided view per position inside a block: element i of every view belongs to block i, so the
    # reductions below are element-wise operations over a handful of arrays (at most 8 for 2x2x2 blocks).
    values = [
        pixels[tuple(slice(offset, None, step) for offset, step in zip(position, block, strict=True))]
        for position in np.ndindex(*block)
    ]
    if method == "nearest":
        return values[0]
    if method == "mean":
        return _mean(values, pixels.dtype)
    return _mode(values)


def _mean(values: list[np.ndarray], dtype: np.dtype) -> np.ndarray:
    """The mean of booleans and floats (integers: ``_integer_mean``)."""
    if dtype.kind == "b":
        # The mean of 0/1 values is at least 0.5 exactly when at least half of them are set.
        count = values[0].astype(np.uint32)
        for more in values[1:]:
            count += more
        return 2 * count >= len(values)
    total = values[0].astype(np.complex128 if dtype.kind == "c" else np.float64)
    for more in values[1:]:
        total += more
    total /= len(values)
    return total.astype(dtype)


def _integer_mean(pixels: np.ndarray, block: tuple[int, ...]) -> np.ndarray:
    """The exact mean of every ``block`` of integer ``pixels``, of any width, rounded half to even (as np.rint
    of the exact mean would round it), computed in integers only."""
    count = math.prod(block)
    if count == 1:
        return pixels
    if pixels.dtype.itemsize <= 4:
        return _narrow_integer_mean(pixels, block, count)
    return _wide_integer_mean(pixels, block, count)


def _narrow_integer_mean(pixels: np.ndarray, block: tuple[int, ...], count: int) -> np.ndarray:
    """``_integer_mean`` of integers up to 32 bits: their block sums fit a wider integer type."""
    dtype = pixels.dtype
    info = np.iinfo(dtype)
    # 32-bit sums hold any handful of 8- or 16-bit values (with room for the rounding bias added below).
    narrow = np.dtype(np.uint32 if dtype.kind == "u" else np.int32)
    largest = max(abs(info.min), info.max) + 1
    wide = narrow if dtype.itemsize <= 2 and count * largest <= np.iinfo(narrow).max else np.dtype(np.int64)
    total = _block_sums(pixels, block, wide)
    if count & (count - 1) == 0:
        # A power of two (2x2 and 2x2x2 blocks): no division; total >> shift is the mean rounded down.
        shift = count.bit_length() - 1
        odd = total >> shift
        odd &= 1
        return _shift_half_to_even(total, shift, odd).astype(dtype)
    quotient, remainder = np.divmod(total, count)
    return _round_half_to_even(quotient, remainder, count).astype(dtype)


def _wide_integer_mean(pixels: np.ndarray, block: tuple[int, ...], count: int) -> np.ndarray:
    """``_integer_mean`` of 64-bit integers, whose sums no integer type holds (and float64 keeps 53 bits).

    Every value is split into count * q + r with 0 <= r < count, so a block sums to count * Q + R, Q the sum
    of its q and R the (small) sum of its r, and its mean is Q + R / count. Q may wrap around the 64-bit
    range on the way, but the mean of values in range is in range, so arithmetic modulo 2^64 ends exact.
    """
    if count & (count - 1) == 0:
        # A power of two (2x2 and 2x2x2 blocks): q is a shift, and r the low bits of the value, which survive
        # a cast to a small type; no 64-bit division (several times slower) anywhere.
        shift = count.bit_length() - 1
        small = np.min_scalar_type(count * count)  # holds R and the rounding bias
        quotient = _block_sums(pixels >> shift, block, pixels.dtype)
        remainders = pixels.astype(small)
        remainders &= count - 1
        rest = _block_sums(remainders, block, small)
        # The mean rounded down is Q + (R >> shift); its parity decides the halfway cases.
        odd = quotient.astype(small)
        odd ^= rest >> shift
        odd &= 1
        quotient += _shift_half_to_even(rest, shift, odd)
        return quotient
    quotients, remainders = np.divmod(pixels, count)
    small = np.min_scalar_type(count * (count - 1))  # holds R
    quotient = _block_sums(quotients, block, pixels.dtype)
    carry, remainder = np.divmod(_block_sums(remainders.astype(small), block, small), count)
    quotient += carry
    return _round_half_to_even(quotient, remainder, count)


def _block_sums(pixels: np.ndarray, block: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """The sum of every ``block`` of ``pixels`` (not all ones), added in ``dtype``.

    Outer axes first: the halves of a plane or a row are long contiguous runs that add at memory speed, and
    each step leaves less data for the strided x step at the end (for 2x2x2, 8 strided views of every pixel
    were three times slower).
    """
    total = pixels
    for axis, factor in enumerate(block):
        if factor == 1:
            continue
        parts = [total[(slice(None),) * axis + (slice(offset, None, factor),)] for offset in range(factor)]
        summed = np.add(parts[0], parts[1], dtype=dtype)
        for more in parts[2:]:
            summed += more
        total = summed
    return total


def _shift_half_to_even(total: np.ndarray, shift: int, odd: np.ndarray) -> np.ndarray:
    """total / 2^shift rounded half to even, in place, where ``odd`` is 1 where total >> shift is odd: adding
    2^shift / 2 - 1, plus 1 where odd, carries into the quotient exactly where it must round up."""
    total += (1 << shift) // 2 - 1
    total += odd
    total >>= shift
    return total


def _round_half_to_even(quotient: np.ndarray, remainder: np.ndarray, count: int) -> np.ndarray:
    """quotient + remainder / count rounded half to even, in place: up when the remainder is above half the
    count, or exactly half with the quotient odd (compared against count // 2, so nothing can overflow)."""
    half = count // 2
    up = remainder > half
    if count % 2 == 0:
        up |= (remainder == half) & (quotient & 1 == 1)
    quotient += up
    return quotient


def _mode(values: list[np.ndarray]) -> np.ndarray:
    """The most frequent value of each block, the smallest one on ties."""
    # Count, for each position, how many positions of its block hold the same value: with at most 8
    # positions the pairwise comparisons are cheaper than sorting every block.
    counts = [np.ones(values[0].shape, dtype=np.uint8) for _ in values]
    for first, second in itertools.combinations(range(len(values)), 2):
        equal = values[first] == values[second]
        counts[first] += equal
        counts[second] += equal
    best = values[0].copy()
    best_count = counts[0]
    for value, count in zip(values[1:], counts[1:], strict=True):
        better = (count > best_count) | ((count == best_count) & (value < best))
        np.copyto(best, value, where=better)
        best_count = np.where(better, count, best_count)
    return best


def computed_levels(stored: list[PixelLevel], info: SourceInfo, options: ServeOptions) -> list[PixelLevel]:
    """The levels to serve after the ``stored`` ones, each halving y and x of the level before (and z while
    z is not much coarser than x): down to one chunk per plane, or up to ``options.levels`` levels in all."""
    if not stored:
        raise ValueError("a pyramid needs at least one stored level")
    y, x = info.axes.index("y"), info.axes.index("x")
    z = info.axes.find("z")
    z_size, x_size = _comparable_sizes(info.physical_sizes.get("z"), info.physical_sizes.get("x"))
    added: list[PixelLevel] = []
    previous = stored[-1]
    while previous.shape[y] > 1 or previous.shape[x] > 1:  # a 1x1 plane cannot be halved any further
        if options.levels is not None:
            if len(stored) + len(added) >= options.levels:
                break
        elif previous.shape[y] <= previous.chunks[y] and previous.shape[x] <= previous.chunks[x]:
            break
        factors = [1] * len(previous.shape)
        factors[y] = factors[x] = 2
        if (
            z >= 0
            and previous.shape[z] > 1
            and z_size * previous.downsampling[z] <= Z_ISOTROPY_TOLERANCE * x_size * previous.downsampling[x]
        ):
            factors[z] = 2
        previous = ComputedLevel(previous, tuple(factors), options.downsample, str(len(stored) + len(added)))
        added.append(previous)
    return added


def _comparable_sizes(z: PhysicalSize | None, x: PhysicalSize | None) -> tuple[float, float]:
    """The z and x pixel sizes as numbers in one unit; an unknown size counts as 1."""
    if z is None or x is None:
        return (z.value if z else 1.0, x.value if x else 1.0)
    if z.unit != x.unit and z.unit in _METERS_PER_UNIT and x.unit in _METERS_PER_UNIT:
        return z.value * _METERS_PER_UNIT[z.unit], x.value * _METERS_PER_UNIT[x.unit]
    return z.value, x.value
