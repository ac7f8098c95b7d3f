"""The source conformance suite: what every ImageSource must do, checked against the format's own reader."""

from __future__ import annotations

import builtins
import hashlib
import math
import os
import random
import sys
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from zarrfs.errors import SourceError
from zarrfs.sources.base import CANONICAL_AXES, ImageSource

# Opening may read metadata, never pixels: at most this many bytes, plus this much per stored plane (formats
# keep metadata beside each plane, e.g. a TIFF IFD, read through a 4 KiB buffer), and never more than a
# quarter of the pixel bytes.
OPEN_READ_ALLOWANCE = 256 * 2**10
OPEN_READ_PER_PLANE = 8 * 2**10
CONCURRENT_READERS = 8
READS_PER_READER = 25
# Native blocks checked per level (all of them when the level has fewer).
NATIVE_BLOCKS_CHECKED = 64


@dataclass
class SourceCase:
    """One image to check: ``open`` makes a fresh source; ``references`` are the pixels of the stored levels
    (level 0 first; levels left out are not compared) in canonical axis order, as the format's own reader
    gives them; ``files`` are every file the source may read (None: only check that ``files()`` exist)."""

    open: Callable[[], ImageSource]
    references: Sequence[np.ndarray]
    files: Collection[str | os.PathLike[str]] | None = None


def _whole(shape: Sequence[int]) -> tuple[slice, ...]:
    return tuple(slice(0, extent) for extent in shape)


def _regions_across_units(
    shape: Sequence[int], unit: Sequence[int], rng: random.Random, count: int
) -> Iterator[tuple[slice, ...]]:
    """Regions that start just before a storage-unit boundary and end just after another one, single
    pixels, and regions touching the far edge: where readers cut and paste blocks."""
    for _ in range(count):
        region = []
        for extent, step in zip(shape, unit, strict=True):
            step = max(1, min(step, extent))
            boundary = step * rng.randrange(0, max(1, math.ceil(extent / step)))
            start = min(max(0, boundary - rng.randrange(0, step)), extent - 1)
            stop = min(extent, start + rng.randrange(1, 2 * step + 2))
            region.append(slice(start, stop))
        yield tuple(region)
    yield tuple(slice(extent - 1, extent) for extent in shape)
    yield tuple(slice(0, 1) for _ in shape)


def _file_digest(path: str) -> tuple[int, int, int, str]:
    status = os.stat(path)
    digest = hashlib.blake2b()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(2**20), b""):
            digest.update(block)
    return status.st_size, status.st_mtime_ns, status.st_ino, digest.hexdigest()


def _read_bytes_so_far() -> int:
    """Bytes this process has read with read-type system calls (Linux /proc/self/io rchar)."""
    with open("/proc/self/io") as io:
        for line in io:
            if line.startswith("rchar:"):
                return int(line.split()[1])
    raise RuntimeError("no rchar in /proc/self/io")


@contextmanager
def _files_opened() -> Iterator[set[str]]:
    """The data files opened while the block runs (Python's own modules and libraries left out)."""
    opened: set[str] = set()
    real_open, real_os_open = builtins.open, os.open
    skipped = tuple(os.path.realpath(prefix) for prefix in {sys.prefix, sys.base_prefix, "/proc", "/sys"})

    def note(path: object) -> None:
        if isinstance(path, str | bytes | os.PathLike):
            name = os.path.realpath(os.fsdecode(path))
            if not name.startswith(skipped) and not name.endswith((".py", ".pyc", ".so")):
                opened.add(name)

    def watched_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        note(file)
        return real_open(file, *args, **kwargs)

    def watched_os_open(path: Any, *args: Any, **kwargs: Any) -> Any:
        note(path)
        return real_os_open(path, *args, **kwargs)

    builtins.open, os.open = watched_open, watched_os_open
    try:
        yield opened
    finally:
        builtins.open, os.open = real_open, real_os_open


class SourceConformance:
    """Contract tests for an ImageSource implementation; subclass it and define a ``case`` fixture."""

    @pytest.fixture
    def case(self) -> SourceCase:
        raise NotImplementedError("define a `case` fixture returning a SourceCase")

    @pytest.fixture
    def source(self, case: SourceCase) -> Iterator[ImageSource]:
        opened = case.open()
        try:
            yield opened
        finally:
            opened.close()

    def test_info_describes_a_canonical_image(self, case: SourceCase, source: ImageSource) -> None:
        info = source.info
        assert info.axes.endswith("yx") and 2 <= len(info.axes) <= 5
        assert info.axes == "".join(axis for axis in CANONICAL_AXES if axis in info.axes)
        assert info.dtype.isnative or info.dtype.itemsize == 1
        assert info.levels, "a source has at least level 0"
        for level in info.levels:
            assert len(level.shape) == len(info.axes) and min(level.shape) >= 1
            assert len(level.storage_unit) == len(info.axes) and min(level.storage_unit) >= 1
        for previous, level in zip(info.levels, info.levels[1:], strict=False):
            assert all(a >= b for a, b in zip(previous.shape, level.shape, strict=True)), "levels shrink"
        assert set(info.physical_sizes) <= set(info.axes)
        if "c" in info.axes and info.channels:
            assert len(info.channels) == info.levels[0].shape[info.axes.index("c")]
        np.dtype(info.dtype).type(info.fill)  # the fill value is a value of the dtype
        assert len(case.references) <= len(info.levels)

    def test_whole_levels_equal_the_reference(self, case: SourceCase, source: ImageSource) -> None:
        for level, reference in enumerate(case.references):
            pixels = source.read_region(level, _whole(source.info.levels[level].shape))
            assert pixels.dtype == source.info.dtype
            np.testing.assert_array_equal(pixels, reference, err_msg=f"level {level}")

    def test_regions_across_storage_units_equal_the_reference(
        self, case: SourceCase, source: ImageSource
    ) -> None:
        rng = random.Random(20261129)
        for level, reference in enumerate(case.references):
            stored = source.info.levels[level]
            for region in _regions_across_units(stored.shape, stored.storage_unit, rng, 12):
                pixels = source.read_region(level, region)
                assert pixels.shape == tuple(part.stop - part.start for part in region)
                np.testing.assert_array_equal(pixels, reference[region], err_msg=f"level {level} {region}")

    def test_concurrent_reads_are_exact(self, case: SourceCase, source: ImageSource) -> None:
        reference = case.references[0]
        stored = source.info.levels[0]
        failures: list[str] = []

        def reader(seed: int) -> None:
            rng = random.Random(seed)
            for region in _regions_across_units(stored.shape, stored.storage_unit, rng, READS_PER_READER):
                try:
                    if not np.array_equal(source.read_region(0, region), reference[region]):
                        failures.append(f"wrong pixels in {region}")
                except Exception as error:
                    failures.append(f"{region}: {type(error).__name__}: {error}")

        threads = [threading.Thread(target=reader, args=(seed,)) for seed in range(CONCURRENT_READERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not any(thread.is_alive() for thread in threads), "concurrent reads hung"
        assert not failures, failures[:5]

    def test_opening_reads_metadata_only(self, case: SourceCase) -> None:
        case.open().close()  # the first open may import modules; measure a second one
        before = _read_bytes_so_far()
        source = case.open()
        read = _read_bytes_so_far() - before
        try:
            shapes = [level.shape for level in source.info.levels]
            pixel_bytes = sum(math.prod(shape) for shape in shapes) * source.info.dtype.itemsize
        finally:
            source.close()
        planes = sum(math.prod(shape[:-2]) for shape in shapes)
        allowance = OPEN_READ_ALLOWANCE + OPEN_READ_PER_PLANE * planes
        assert read <= max(allowance, pixel_bytes // 4), f"opening read {read} of {pixel_bytes} bytes"

    def test_files_are_named_and_never_written(self, case: SourceCase) -> None:
        with _files_opened() as opened:
            source = case.open()
            try:
                files = source.files()
                before = {path: _file_digest(path) for path in files}
                for level in range(len(source.info.levels)):
                    source.read_region(level, _whole(source.info.levels[level].shape))
            finally:
                source.close()
        assert files and all(os.path.isabs(path) and os.path.isfile(path) for path in files)
        named = {os.path.realpath(path) for path in files}
        assert opened <= named, f"read files it does not name: {sorted(opened - named)}"
        if case.files is not None:
            assert named == {os.path.realpath(path) for path in case.files}
        assert {path: _file_digest(path) for path in files} == before, "a source file changed"

    def test_reads_after_close_fail_cleanly(self, case: SourceCase) -> None:
        source = case.open()
        shape = source.info.levels[0].shape
        source.close()
        with pytest.raises(SourceError):
            source.read_region(0, tuple(slice(0, 1) for _ in shape))
        source.close()  # closing twice is harmless

    def test_native_blocks_lie_in_the_grid_and_decode_to_the_pixels(
        self, case: SourceCase, source: ImageSource
    ) -> None:
        info = source.info
        for level, reference in enumerate(case.references):
            native = source.native_blocks(level)
            if native is None:
                continue
            shape = info.levels[level].shape
            assert len(native.block_shape) == len(shape)
            grid = tuple(
                math.ceil(extent / block) for extent, block in zip(shape, native.block_shape, strict=True)
            )
            decoder = _decoder(native.codec, native.filters)
            indices = list(np.ndindex(*grid))
            rng = random.Random(level)
            for index in rng.sample(indices, min(NATIVE_BLOCKS_CHECKED, len(indices))):
                stored = source.read_native_block(level, index)
                region = tuple(
                    slice(i * block, min((i + 1) * block, extent))
                    for i, block, extent in zip(index, native.block_shape, shape, strict=True)
                )
                expected = np.full(native.block_shape, info.fill, dtype=info.dtype.newbyteorder("<"))
                expected[tuple(slice(0, part.stop - part.start) for part in region)] = reference[region]
                if stored is None:  # a block the file never wrote: the fill value
                    np.testing.assert_array_equal(
                        reference[region], expected[_whole(reference[region].shape)]
                    )
                    continue
                decoded = np.frombuffer(decoder(stored), dtype=expected.dtype).reshape(native.block_shape)
                np.testing.assert_array_equal(decoded, expected, err_msg=f"level {level} block {index}")
            outside = tuple(grid)
            with pytest.raises((IndexError, ValueError, SourceError)):
                source.read_native_block(level, outside)


def _decoder(codec: Any, filters: Sequence[Any] = ()) -> Callable[[bytes], bytes]:
    """Decodes a stored block as Zarr v2 does: the codec, then the filters, last first."""
    import numcodecs

    steps = [
        numcodecs.get_codec(dict(config)) for config in (codec, *reversed(filters)) if config is not None
    ]

    def decode(data: bytes) -> bytes:
        for step in steps:
            data = bytes(step.decode(data))
        return data

    return decode
