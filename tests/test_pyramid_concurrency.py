"""Computed chunks made concurrently: parent chunks come from several threads, nested batches from many
concurrent readers never deadlock, results stay exact, and a failed source block fails only its chunks."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from array_source import ArraySource
from block_reference import block_reduce
from test_pyramid import LARGE_CACHE_BYTES, sample_data, whole_level

from zarrfs.core.levels import ChunkReadError, FanOut, PixelLevel, StoredLevel, new_cache
from zarrfs.core.options import ServeOptions
from zarrfs.core.pyramid import computed_levels

# Batches of these tests run on one runner, as a dataset's levels share theirs.
FANOUT = FanOut()


class SlowSource(ArraySource):
    """Takes a little time per region (as decoding does, without holding the GIL) and notes the threads."""

    def __init__(self, data: np.ndarray, axes: str, failing_regions: set[tuple[int, ...]]) -> None:
        super().__init__(data, axes, failing_regions=failing_regions)
        self.threads: set[int] = set()

    def read_region(self, level: int, region: tuple[slice, ...]) -> np.ndarray:
        self.threads.add(threading.get_ident())
        time.sleep(0.002)
        return super().read_region(level, region)


def slow_pyramid(
    cache_bytes: int = LARGE_CACHE_BYTES, failing_regions: frozenset[tuple[int, ...]] = frozenset()
) -> tuple[SlowSource, list[PixelLevel]]:
    data = sample_data((512, 640), np.uint16, "mean")
    source = SlowSource(data, "yx", set(failing_regions))
    stored = StoredLevel(source, 0, (32, 32), new_cache(cache_bytes))
    return source, [stored, *computed_levels([stored], source.info, ServeOptions())]


def test_coarse_chunk_reads_the_stored_level_from_several_threads() -> None:
    source, levels = slow_pyramid()
    coarsest = levels[-1]
    assert coarsest.grid == (1, 1)
    pixels = coarsest.chunk_pixels((0, 0))
    assert len(source.threads) > 1
    expected = source.data
    for level in levels[1:]:
        expected = block_reduce(expected, level.factors, "mean")  # type: ignore[attr-defined]
    np.testing.assert_array_equal(pixels[: expected.shape[0], : expected.shape[1]], expected)


@pytest.mark.parametrize("cache_bytes", [LARGE_CACHE_BYTES, 40 * 32 * 32 * 2])
def test_many_concurrent_readers_of_every_level_finish_with_exact_pixels(cache_bytes: int) -> None:
    source, levels = slow_pyramid(cache_bytes)
    requests = [(level, index) for level in reversed(levels) for index in level.chunk_indices()]
    with ThreadPoolExecutor(8) as readers:
        futures = [readers.submit(level.chunk_pixels, index) for level, index in requests]
        for future in futures:
            future.result(timeout=60)
    expected = source.data
    for level in levels[1:]:
        expected = block_reduce(expected, level.factors, "mean")  # type: ignore[attr-defined]
        np.testing.assert_array_equal(whole_level(level), expected)


def test_a_failed_block_fails_only_the_chunks_made_from_it() -> None:
    _, levels = slow_pyramid(failing_regions=frozenset({(64, 96)}))
    level_2 = levels[2]  # 128x160 with 32x32 chunks: chunk (0, 0) covers level-0 rows and columns 0-127
    with pytest.raises(ChunkReadError):
        level_2.chunk_pixels((0, 0))
    for index in level_2.chunk_indices():
        if index != (0, 0):
            level_2.chunk_pixels(index)
    with pytest.raises(ChunkReadError):
        levels[-1].chunk_pixels((0, 0))


def test_run_concurrently_nested_deeper_than_the_pool() -> None:
    def tree(depth: int) -> int:
        if depth == 0:
            time.sleep(0.001)
            return 1
        return sum(FANOUT.run([lambda: tree(depth - 1) for _ in range(3)]))

    with ThreadPoolExecutor(8) as callers:
        assert list(callers.map(lambda _: tree(5), range(8))) == [3**5] * 8


def test_run_concurrently_raises_the_failure_of_a_call() -> None:
    def fail() -> int:
        raise KeyError("broken")

    with pytest.raises(KeyError, match="broken"):
        FANOUT.run([lambda: 1, fail, lambda: 3])
    assert FANOUT.run([lambda: 1, lambda: 2]) == [1, 2]
