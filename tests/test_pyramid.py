"""Computed pyramid levels: pixel values against a plain numpy reference, the level rule, and that every
level reads its parent through the shared chunk cache (each stored block decoded once)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from array_source import ArraySource
from block_reference import block_reduce

from zarrfs.core.levels import PixelLevel, StoredLevel, new_cache
from zarrfs.core.options import ServeOptions
from zarrfs.core.pyramid import ComputedLevel, computed_levels, downsample
from zarrfs.sources import Level, PhysicalSize

LARGE_CACHE_BYTES = 256 * 2**20
DTYPES = [np.uint8, np.uint16, np.int16, np.uint64, np.int64, np.float32]
INTEGER_DTYPES = [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64]
METHODS = ["mean", "nearest", "mode"]


def whole_level(level: PixelLevel) -> np.ndarray:
    return level.read_through_chunks(tuple(slice(0, extent) for extent in level.shape))


def sample_data(shape: tuple[int, ...], dtype: type, method: str, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if method == "mode":
        # Few distinct values, so that blocks hold repeats and ties.
        return (rng.integers(0, 4, shape) * (0.5 if dtype == np.float32 else 1)).astype(dtype)
    if dtype == np.float32:
        return rng.normal(100.0, 30.0, shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, shape, endpoint=True, dtype=dtype)


def pyramid(
    data: np.ndarray,
    axes: str,
    chunks: tuple[int, ...],
    method: str = "mean",
    physical_sizes: dict[str, PhysicalSize] | None = None,
    levels: int | None = None,
) -> list[PixelLevel]:
    source = ArraySource(data, axes, physical_sizes=physical_sizes)
    stored = StoredLevel(source, 0, chunks, new_cache(LARGE_CACHE_BYTES))
    return [stored, *computed_levels([stored], source.info, ServeOptions(levels=levels, downsample=method))]


def assert_levels_match_reference(levels: list[PixelLevel], data: np.ndarray, method: str) -> None:
    expected = data
    for level in levels[1:]:
        assert isinstance(level, ComputedLevel)
        expected = block_reduce(expected, level.factors, method)
        actual = whole_level(level)
        assert actual.dtype == data.dtype
        if data.dtype == np.float32 and method == "mean":
            # Float sums may be added in another order than the reference's.
            np.testing.assert_allclose(actual, expected, rtol=1e-6)
        else:
            np.testing.assert_array_equal(actual, expected)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_2d_odd_shape_matches_reference(dtype: type, method: str) -> None:
    data = sample_data((1001, 777), dtype, method)
    levels = pyramid(data, "yx", (128, 128), method)
    assert [level.shape for level in levels] == [(1001, 777), (501, 389), (251, 195), (126, 98)]
    assert_levels_match_reference(levels, data, method)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_3d_with_z_halved_matches_reference(dtype: type, method: str) -> None:
    data = sample_data((9, 67, 45), dtype, method)
    levels = pyramid(data, "zyx", (4, 16, 16), method)
    assert [level.factors for level in levels[1:]] == [(2, 2, 2)] * 3
    assert [level.shape for level in levels] == [(9, 67, 45), (5, 34, 23), (3, 17, 12), (2, 9, 6)]
    assert_levels_match_reference(levels, data, method)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("chunks", [(1, 16, 16), (3, 15, 17), (1, 67, 45)])
def test_blocks_straddling_parent_chunks_match_reference(chunks: tuple[int, ...], method: str) -> None:
    # One-plane or odd chunks: a 2x2x2 block can take pixels from two or more chunks of the level above.
    data = sample_data((9, 67, 45), np.uint16, method)
    levels = pyramid(data, "zyx", chunks, method, levels=4)
    assert [level.factors for level in levels[1:]] == [(2, 2, 2)] * 3
    assert_levels_match_reference(levels, data, method)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", [np.uint8, np.int16])
def test_3d_with_z_kept_matches_reference(dtype: type, method: str) -> None:
    data = sample_data((7, 67, 45), dtype, method)
    sizes = {"z": PhysicalSize(3.0, "micrometer"), "x": PhysicalSize(1.0, "micrometer")}
    levels = pyramid(data, "zyx", (2, 16, 16), method, physical_sizes=sizes)
    # z steps 3 µm against x steps 1, 2, 4 µm: z joins the halving once 3 <= 1.5 * x step.
    assert [level.factors for level in levels[1:]] == [(1, 2, 2), (2, 2, 2), (2, 2, 2)]
    assert_levels_match_reference(levels, data, method)


@pytest.mark.parametrize("method", METHODS)
def test_5d_matches_reference(method: str) -> None:
    data = sample_data((2, 3, 5, 67, 45), np.uint16, method)
    levels = pyramid(data, "tczyx", (1, 1, 2, 32, 32), method)
    assert [level.factors for level in levels[1:]] == [(1, 1, 2, 2, 2), (1, 1, 2, 2, 2)]
    assert levels[-1].shape == (2, 3, 2, 17, 12)
    assert_levels_match_reference(levels, data, method)


def test_downsample_small_example_by_hand() -> None:
    image = np.array([[1, 1, 2], [3, 1, 2], [5, 5, 9]], dtype=np.uint8)
    # Blocks: {1, 1, 3, 1}, {2, 2} at the right edge, {5, 5} at the bottom, {9} in the corner.
    assert downsample(image, (2, 2), "mean").tolist() == [[2, 2], [5, 9]]  # 1.5 rounds to 2
    assert downsample(image, (2, 2), "nearest").tolist() == [[1, 2], [5, 9]]
    assert downsample(image, (2, 2), "mode").tolist() == [[1, 2], [5, 9]]
    assert downsample(np.array([[4, 3], [3, 4]], dtype=np.int16), (2, 2), "mode").tolist() == [[3]]
    flags = np.array([[True, False, True, True], [False, False, False, False]])
    assert downsample(flags, (2, 2), "mean").tolist() == [[False, True]]  # 1/4 and 2/4 set


def test_computed_level_attributes() -> None:
    levels = pyramid(np.zeros((1000, 1300), np.uint16), "yx", (256, 256), "mode")
    assert [level.name for level in levels] == ["0", "1", "2", "3"]
    assert [level.shape for level in levels] == [(1000, 1300), (500, 650), (250, 325), (125, 163)]
    assert [level.chunks for level in levels] == [(256, 256), (256, 256), (250, 256), (125, 163)]
    assert [level.downsampling for level in levels] == [(1, 1), (2, 2), (4, 4), (8, 8)]
    for parent, level in itertools.pairwise(levels):
        assert isinstance(level, ComputedLevel)
        assert level.parent is parent and level.method == "mode" and level.cache is levels[0].cache


@pytest.mark.parametrize(("total", "added"), [(1, 0), (2, 1), (4, 3), (7, 6)])
def test_levels_option_gives_exactly_that_many(total: int, added: int) -> None:
    levels = pyramid(np.zeros((1000, 1300), np.uint8), "yx", (256, 256), levels=total)
    assert len(levels) == 1 + added
    # Beyond one chunk per plane when asked for.
    assert levels[-1].shape == (math.ceil(1000 / 2**added), math.ceil(1300 / 2**added))


def test_one_chunk_per_plane_adds_nothing() -> None:
    assert len(pyramid(np.zeros((3, 200, 256), np.uint8), "zyx", (1, 256, 256))) == 1


@pytest.mark.parametrize(
    ("shape", "axes", "sizes", "z_factors"),
    [
        ((1, 512, 512), "zyx", {}, [1, 1]),  # a single plane has no z to halve
        ((64, 512, 512), "zyx", {}, [2, 2]),  # unknown sizes: isotropic
        ((64, 512, 512), "zyx", {"z": PhysicalSize(0.25), "x": PhysicalSize(0.1)}, [1, 2]),
        ((64, 512, 512), "zyx", {"z": PhysicalSize(0.7), "x": PhysicalSize(0.1)}, [1, 1]),
        ((64, 512, 512), "zyx", {"z": PhysicalSize(2.0)}, [1, 2]),  # x unknown counts as 1
        # 0.002 mm is 2 µm: compared in one unit.
        (
            (64, 512, 512),
            "zyx",
            {"z": PhysicalSize(0.002, "millimeter"), "x": PhysicalSize(1.0, "micrometer")},
            [1, 2],
        ),
        ((3, 64, 512, 512), "czyx", {}, [2, 2]),
    ],
)
def test_z_is_halved_while_close_to_x(
    shape: tuple[int, ...], axes: str, sizes: dict[str, PhysicalSize], z_factors: list[int]
) -> None:
    source = ArraySource(np.zeros(shape, np.uint8), axes, physical_sizes=sizes)
    stored = StoredLevel(source, 0, (1,) * (len(shape) - 2) + (128, 128), new_cache(2**20))
    added = computed_levels([stored], source.info, ServeOptions())
    assert len(added) == 2
    z = axes.index("z")
    assert [level.factors[z] for level in added] == z_factors
    assert all(level.factors[:z] == (1,) * z for level in added)


class TwoLevelSource(ArraySource):
    """A file with a stored half-resolution level (here: every second pixel, unlike any computed method)."""

    def __init__(self, data: np.ndarray, axes: str) -> None:
        super().__init__(data, axes)
        self.reduced = data[..., ::2, ::2]
        self.info.levels.append(Level(self.reduced.shape, self.reduced.shape))

    def read_region(self, level: int, region: tuple[slice, ...]) -> np.ndarray:
        if level == 1:
            return self.reduced[region].copy()
        return super().read_region(level, region)


@pytest.mark.parametrize(("total", "added_names"), [(None, ["2", "3"]), (1, []), (2, []), (3, ["2"])])
def test_computed_levels_continue_after_stored_ones(total: int | None, added_names: list[str]) -> None:
    data = sample_data((1000, 1300), np.uint16, "mean")
    source = TwoLevelSource(data, "yx")
    cache = new_cache(LARGE_CACHE_BYTES)
    stored = [StoredLevel(source, 0, (256, 256), cache), StoredLevel(source, 1, (256, 256), cache)]
    added = computed_levels(stored, source.info, ServeOptions(levels=total))
    assert [level.name for level in added] == added_names
    if added:
        assert added[0].shape == (250, 325) and added[0].downsampling == (4, 4)
        # Made from the stored level 1, not from level 0.
        np.testing.assert_array_equal(whole_level(added[0]), block_reduce(source.reduced, (2, 2), "mean"))


class RecordingSource(ArraySource):
    """Remembers every region it is asked for, as (start, stop) per axis."""

    def __init__(self, data: np.ndarray, axes: str, storage_unit: tuple[int, ...]) -> None:
        super().__init__(data, axes, storage_unit)
        self.regions: list[tuple[tuple[int, int], ...]] = []

    def read_region(self, level: int, region: tuple[slice, ...]) -> np.ndarray:
        self.regions.append(tuple((part.start, part.stop) for part in region))
        return super().read_region(level, region)


def storage_blocks(shape: tuple[int, ...], unit: tuple[int, ...]) -> set[tuple[tuple[int, int], ...]]:
    return {
        tuple(
            (i * size, min((i + 1) * size, extent))
            for i, size, extent in zip(index, unit, shape, strict=True)
        )
        for index in np.ndindex(*(math.ceil(extent / size) for extent, size in zip(shape, unit, strict=True)))
    }


def recorded_pyramid(cache_bytes: int) -> tuple[RecordingSource, list[PixelLevel]]:
    data = sample_data((1000, 1300), np.uint16, "mean")
    source = RecordingSource(data, "yx", storage_unit=(64, 64))
    stored = StoredLevel(source, 0, (64, 64), new_cache(cache_bytes))
    return source, [stored, *computed_levels([stored], source.info, ServeOptions())]


@pytest.mark.parametrize("which", ["coarsest", "level 2"])
def test_each_storage_block_is_decoded_at_most_once(which: str) -> None:
    chunk_bytes = 64 * 64 * 2
    chunks_per_row = math.ceil(1300 / 64)
    # Room for one row of level-0 chunks and a little more, far less than the image.
    source, levels = recorded_pyramid(chunk_bytes * chunks_per_row + 4 * chunk_bytes)
    assert [level.shape for level in levels][-1] == (32, 41)
    level = levels[-1] if which == "coarsest" else levels[2]
    for index in level.chunk_indices():
        level.chunk_pixels(index)
    assert len(source.regions) == len(set(source.regions)), "a storage block was decoded twice"
    # Both levels cover the whole image: exactly the storage blocks, each once, nothing outside the image.
    assert set(source.regions) == storage_blocks((1000, 1300), (64, 64))


def test_computed_level_reads_parent_through_the_cache() -> None:
    source, levels = recorded_pyramid(LARGE_CACHE_BYTES)
    for index in levels[0].chunk_indices():
        levels[0].chunk_pixels(index)
    reads_for_level_0 = source.reads
    for level in levels[1:]:
        for index in level.chunk_indices():
            level.chunk_pixels(index)
    assert source.reads == reads_for_level_0


def float_mean(values: list[np.ndarray], dtype: np.dtype) -> np.ndarray:
    """The mean as first written: float64 sum over the count, rounded half to even."""
    total = np.sum([value.astype(np.float64) for value in values], axis=0) / len(values)
    return np.rint(total).astype(dtype)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32])
@pytest.mark.parametrize(
    "block", [(count,) for count in range(1, 10)] + [(2, 2), (3, 3), (2, 2, 2), (1, 3, 2), (3, 1, 1)]
)
def test_integer_mean_rounds_like_float_mean(dtype: type, block: tuple[int, ...]) -> None:
    info = np.iinfo(dtype)
    rng = np.random.default_rng(math.prod(block))
    shape = tuple(factor * extent for factor, extent in zip(block, (7, 9, 11)[-len(block) :], strict=True))
    shape = shape if len(block) > 1 else (block[0] * 4000,)
    extremes = np.array([info.min, info.min + 1, -1 if info.min else 2, 0, 1, info.max - 1, info.max], dtype)
    samples = [
        lambda: rng.integers(info.min, info.max, shape, endpoint=True, dtype=dtype),
        lambda: rng.choice(extremes, shape),
        # Small values around zero: many sums fall exactly halfway between two integers.
        lambda: rng.integers(-3 if info.min else 0, 4, shape).astype(dtype),
    ]
    for sample in samples:
        pixels = sample()
        actual = downsample(pixels, block, "mean")
        assert actual.dtype == dtype
        values = [
            pixels[tuple(slice(offset, None, step) for offset, step in zip(position, block, strict=True))]
            for position in np.ndindex(*block)
        ]
        np.testing.assert_array_equal(actual, float_mean(values, np.dtype(dtype)))


def test_64_bit_means_by_hand() -> None:
    # The float64 mean gave 0 for the first, -2^63 for the second and lost the odd last bits of the others.
    top = 2**64 - 1
    assert downsample(np.full((2, 2), top, np.uint64), (2, 2), "mean").tolist() == [[top]]
    assert downsample(np.full((2, 2), 2**63 - 1, np.int64), (2, 2), "mean").tolist() == [[2**63 - 1]]
    assert downsample(np.full((2, 2), -(2**63), np.int64), (2, 2), "mean").tolist() == [[-(2**63)]]
    # Halfway cases round to even: 2^53 + 1.5 up, 2^64 - 1.5 down; 2^53 + 1 alone stays odd.
    pairs = np.array([[2**53 + 1, 2**53 + 2, top - 1, top, 2**53 + 1]], np.uint64)
    assert downsample(pairs, (1, 2), "mean").tolist() == [[2**53 + 2, top - 1, 2**53 + 1]]
    # -1/2 rounds to 0 and -2^62 - 1/2 to the even -2^62.
    mixed = np.array([[2**63 - 1, -(2**63), -(2**63), -1, 3]], np.int64)
    assert downsample(mixed, (1, 2), "mean").tolist() == [[0, -(2**62), 3]]
    thirds = np.array([[top, top, top - 1]], np.uint64)  # 2^64 - 4/3 rounds to 2^64 - 1
    assert downsample(thirds, (1, 3), "mean").tolist() == [[top]]


def extreme_values(dtype: type) -> np.ndarray:
    """The values where sums overflow or float64 loses bits, those of them the dtype holds."""
    info = np.iinfo(dtype)
    candidates = {0, 1, 2, 3, -1, -2, info.min, info.min + 1, info.max - 1, info.max}
    candidates |= {2**53 - 1, 2**53, 2**53 + 1, -(2**53) - 1, 2**62 + 1, 2**63 - 1, 2**63, -(2**63)}
    candidates |= {-(2**63) + 1, 2**64 - 2, 2**64 - 1}
    return np.array(sorted(value for value in candidates if info.min <= value <= info.max), dtype)


@pytest.mark.parametrize("dtype", INTEGER_DTYPES)
@pytest.mark.parametrize(
    ("shape", "block"),
    [
        ((6, 8), (2, 2)),
        ((7, 9), (2, 2)),  # edge remainders along both axes
        ((4, 6, 8), (2, 2, 2)),
        ((5, 7, 9), (2, 2, 2)),
        ((5, 7, 9), (1, 2, 2)),
        ((9, 12), (3, 3)),
        ((8, 10), (3, 3)),
        ((5, 7), (1, 2)),
        ((11,), (2,)),
        ((13,), (5,)),
        ((4, 5, 6), (3, 1, 4)),
    ],
)
def test_integer_mean_is_exact_at_every_width(
    dtype: type, shape: tuple[int, ...], block: tuple[int, ...]
) -> None:
    info = np.iinfo(dtype)
    rng = np.random.default_rng(len(shape) * 100 + math.prod(block))
    samples = {
        "random": rng.integers(info.min, info.max, shape, endpoint=True, dtype=dtype),
        "extremes mixed": rng.choice(extreme_values(dtype), shape),
        "all the maximum": np.full(shape, info.max, dtype),
        "all the minimum": np.full(shape, info.min, dtype),
        "just below the maximum": np.full(shape, info.max, dtype) - rng.integers(0, 4, shape).astype(dtype),
        "just above the minimum": np.full(shape, info.min, dtype) + rng.integers(0, 4, shape).astype(dtype),
        # Small values around zero: many means fall exactly halfway between two integers.
        "small": rng.integers(-3 if info.min else 0, 4, shape).astype(dtype),
    }
    for name, pixels in samples.items():
        actual = downsample(pixels, block, "mean")
        assert actual.dtype == dtype
        np.testing.assert_array_equal(actual, block_reduce(pixels, block, "mean"), err_msg=name)


@pytest.mark.parametrize("method", METHODS)
def test_first_pixel_centres_follow_the_method(method: str) -> None:
    # z joins the halving at the second level: downsampling (1, 2, 2), (2, 4, 4), (4, 8, 8).
    sizes = {"z": PhysicalSize(3.0, "micrometer"), "x": PhysicalSize(1.0, "micrometer")}
    levels = pyramid(np.zeros((7, 67, 45), np.uint8), "zyx", (2, 16, 16), method, physical_sizes=sizes)
    centres = [level.first_pixel_centre for level in levels]
    if method == "nearest":  # the first pixel of every block: always level 0's first pixel
        assert centres == [(0.0, 0.0, 0.0)] * 4
    else:  # the centre of the block of level-0 pixels each pixel summarises
        assert centres == [(0.0, 0.0, 0.0), (0.0, 0.5, 0.5), (0.5, 1.5, 1.5), (1.5, 3.5, 3.5)]
