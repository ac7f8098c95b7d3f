"""The coarse computed levels' own cache: sized to hold them, within the chunk share of --cache-size, and
never evicted by reads of the finer levels."""

from __future__ import annotations

import math

import numpy as np
import pytest
from array_source import ArraySource
from block_reference import block_reduce
from test_pyramid import sample_data, whole_level

from zarrfs.core import ServeOptions, build_dataset
from zarrfs.core.dataset import COARSE_CACHE_SHARE, Dataset, block_cache_bytes
from zarrfs.core.pyramid import ComputedLevel
from zarrfs.lru import ENTRY_OVERHEAD_BYTES

CHUNK = 64


def level_bytes(dataset: Dataset, name: str, entries_per_chunk: int = 1) -> int:
    """A level's chunks in the cache: ``entries_per_chunk`` entries, of which the pixels and, for compressed
    output, the encoded chunk (not larger) hold the chunk's bytes."""
    level = next(level for level in dataset.levels if level.name == name)
    chunk_bytes = math.prod(level.chunks) * level.dtype.itemsize * min(entries_per_chunk, 2)
    return math.prod(level.grid) * (chunk_bytes + entries_per_chunk * ENTRY_OVERHEAD_BYTES)


def dataset_of(data: np.ndarray, cache_bytes: int, compressor: str = "none") -> tuple[ArraySource, Dataset]:
    source = ArraySource(data, "yx", storage_unit=(CHUNK, CHUNK))
    options = ServeOptions(cache_bytes=cache_bytes, compressor=compressor, chunks=(CHUNK, CHUNK))
    return source, build_dataset(source, options)


def test_coarse_levels_get_exactly_their_room_out_of_the_chunk_share() -> None:
    cache_bytes = 8 * 2**20
    _, dataset = dataset_of(np.zeros((1024, 1024), np.uint16), cache_bytes)
    assert [level.name for level in dataset.levels] == ["0", "1", "2", "3", "4"]
    coarse = [level.name for level in dataset.levels if level.cache is dataset.coarse_cache]
    assert coarse == ["2", "3", "4"]  # level 1 has 1/4 of level 0's pixels: too big to set apart
    assert all(level.cache is dataset.cache for level in dataset.levels[:2])
    assert dataset.coarse_cache.capacity_bytes == sum(level_bytes(dataset, name) for name in coarse)
    chunk_share = cache_bytes - block_cache_bytes(cache_bytes)
    assert dataset.cache.capacity_bytes + dataset.coarse_cache.capacity_bytes == chunk_share


def test_compressed_output_leaves_room_for_the_encoded_chunks() -> None:
    _, raw = dataset_of(np.zeros((1024, 1024), np.uint16), 8 * 2**20)
    _, compressed = dataset_of(np.zeros((1024, 1024), np.uint16), 8 * 2**20, compressor="zstd")
    coarse = ["2", "3", "4"]
    assert [level.name for level in compressed.levels if level.cache is compressed.coarse_cache] == coarse
    # Pixels, encoded chunk and its remembered size.
    expected = sum(level_bytes(compressed, name, entries_per_chunk=3) for name in coarse)
    assert compressed.coarse_cache.capacity_bytes == expected > raw.coarse_cache.capacity_bytes


@pytest.mark.parametrize(
    ("cache_kib", "coarse"), [(32, []), (64, ["4"]), (256, ["3", "4"]), (512, ["2", "3", "4"])]
)
def test_only_the_coarsest_levels_that_fit_are_set_apart(cache_kib: int, coarse: list[str]) -> None:
    # Levels 2, 3, 4 take 128, 32 and 8 KiB; the coarse share is 3/4 of 3/4 of the cache.
    _, dataset = dataset_of(np.zeros((1024, 1024), np.uint16), cache_kib * 2**10)
    assert [level.name for level in dataset.levels if level.cache is dataset.coarse_cache] == coarse
    chunk_share = cache_kib * 2**10 - block_cache_bytes(cache_kib * 2**10)
    assert dataset.coarse_cache.capacity_bytes <= COARSE_CACHE_SHARE * chunk_share


def test_reading_coarse_to_fine_builds_the_coarse_levels_once() -> None:
    data = sample_data((1024, 1280), np.uint16, "mean")
    # The chunk share holds a fraction of levels 0 and 1 beside the coarse levels.
    source, dataset = dataset_of(data, 2 * 2**20)
    levels = dataset.levels
    assert dataset.coarse_cache.capacity_bytes > 0
    coarse = [level for level in levels if level.cache is dataset.coarse_cache]
    assert [level.name for level in coarse] == ["2", "3", "4", "5"]
    levels[-1].chunk_pixels((0, 0))  # as a viewer starts: builds every level under the coarsest chunk
    reads = source.reads
    for level in reversed(levels):
        if level in coarse:
            for index in level.chunk_indices():
                level.chunk_pixels(index)
            assert source.reads == reads, f"level {level.name} was made again"
    # Finer traffic goes through the other cache and leaves the coarse levels alone.
    for level in levels[:2]:
        for index in level.chunk_indices():
            level.chunk_pixels(index)
    reads = source.reads
    expected = data
    for level in levels[1:]:
        assert isinstance(level, ComputedLevel)
        expected = block_reduce(expected, level.factors, "mean")
        if level in coarse:
            np.testing.assert_array_equal(whole_level(level), expected)
    assert source.reads == reads
    assert dataset.coarse_cache.stats().evictions == 0
