"""Display windows from the data (issue 11, item 3): percentiles of a bounded, fixed sample of stored pixels,
checked against numpy over what tifffile reads."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
from array_source import ArraySource
from mounting import mounted, zarrfs

from zarrfs.core import open_dataset
from zarrfs.core.dataset import build_dataset
from zarrfs.core.options import serve_options
from zarrfs.core.windows import SAMPLE_BYTES
from zarrfs.sources.tiff import TiffSource

PERCENTILES = [0.1, 99.9]


def _windows(path: Path) -> list[dict[str, float]]:
    dataset = open_dataset(path)
    try:
        attrs = json.loads(bytes(dataset.tree.read_file(".zattrs")))
    finally:
        dataset.close()
    return [channel["window"] for channel in attrs["omero"]["channels"]]


def _percentiles(values: np.ndarray) -> list[float]:
    return [float(value) for value in np.percentile(values, PERCENTILES, method="inverted_cdf")]


@pytest.fixture
def counted_reads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[tuple[slice, ...], int]]:
    """Every region the TIFF source reads from now on, with its size in bytes."""
    reads: list[tuple[tuple[slice, ...], int]] = []
    original = TiffSource.read_region

    def read_region(self: TiffSource, level: int, region: tuple[slice, ...]) -> np.ndarray:
        pixels = original(self, level, region)
        reads.append((region, pixels.nbytes))
        return pixels

    monkeypatch.setattr(TiffSource, "read_region", read_region)
    return reads


def test_a_float_image_gets_its_percentiles_and_range_not_zero_to_one(tmp_path: Path) -> None:
    """Values from -5 to 4.5 (with NaN and infinities, which no window can hold): start/end are the
    percentiles of the finite values, min/max their range."""
    path = tmp_path / "float.tif"
    data = np.random.default_rng(3).uniform(-5, 4.5, (300, 260)).astype(np.float32)
    data[0, :3] = [np.nan, np.inf, -np.inf]
    tifffile.imwrite(path, data, tile=(64, 64), compression="zlib")
    finite = tifffile.imread(path)
    finite = finite[np.isfinite(finite)]
    [window] = _windows(path)
    start, end = _percentiles(finite)
    assert window == {"min": float(finite.min()), "max": float(finite.max()), "start": start, "end": end}
    assert -5 <= window["start"] < -4.9 and 4.4 < window["end"] <= 4.5
    # `zarrfs info` shows them and says how they were found.
    shown = zarrfs("info", path).stdout
    assert "windows:   0.1 and 99.9 percentiles of level 0 (all of it)" in shown
    assert f"  Channel 0: {start:g} to {end:g} (slider {finite.min():g} to {finite.max():g})" in shown


def test_12_bit_data_in_uint16_from_a_bounded_sample(
    tmp_path: Path, counted_reads: list[tuple[tuple[slice, ...], int]]
) -> None:
    """A 3000x3000 image (17 MiB) of 12-bit values: windows from at most SAMPLE_BYTES of whole tiles, close to
    the percentiles of all pixels, the same on every open; min/max the data type's range."""
    path = tmp_path / "twelve_bit.tif"
    rows = np.linspace(0, 3000, 3000)[:, None]
    noise = np.random.default_rng(5).normal(0, 300, (3000, 3000))
    data = np.clip(rows + noise + 500, 0, 4095).astype(np.uint16)
    tifffile.imwrite(path, data, tile=(256, 256), compression="zlib")
    everything = _percentiles(tifffile.imread(path))
    [window] = _windows(path)
    assert 0 < sum(size for _, size in counted_reads) <= SAMPLE_BYTES
    for region, _ in counted_reads:  # whole tiles, in a few reads
        assert all(part.start % 256 == 0 and part.stop in (*range(256, 3000, 256), 3000) for part in region)
    assert len(counted_reads) <= 32
    assert (window["min"], window["max"]) == (0.0, 65535.0)
    assert abs(window["start"] - everything[0]) <= 100 and abs(window["end"] - everything[1]) <= 100
    assert window["end"] <= 4095
    assert _windows(path) == [window]  # deterministic


def test_a_pyramid_takes_its_windows_from_the_coarsest_stored_level(tmp_path: Path) -> None:
    path = tmp_path / "pyramid.ome.tif"
    rng = np.random.default_rng(7)
    base = rng.integers(0, 1000, (2, 512, 512), dtype=np.uint16)
    coarsest = rng.integers(2000, 3000, (2, 128, 128), dtype=np.uint16)  # unlike level 0, on purpose
    with tifffile.TiffWriter(path) as writer:
        writer.write(base, subifds=2, metadata={"axes": "CYX"}, tile=(64, 64))
        writer.write(base[:, ::2, ::2], subfiletype=1, tile=(64, 64))
        writer.write(coarsest, subfiletype=1, tile=(64, 64))
    stored = tifffile.TiffFile(path).series[0].levels[-1].asarray()
    windows = _windows(path)
    for channel, window in enumerate(windows):
        start, end = _percentiles(stored[channel])
        assert window == {"min": 0.0, "max": 65535.0, "start": start, "end": end}
        assert 2000 <= start < end < 3000


def test_a_storage_unit_over_the_budget_keeps_the_data_types_range(tmp_path: Path) -> None:
    path = tmp_path / "one_strip.tif"
    tifffile.imwrite(path, np.full((3000, 3000), 7, np.uint8), rowsperstrip=3000, compression="zlib")
    assert _windows(path) == [{"min": 0.0, "max": 255.0, "start": 0.0, "end": 255.0}]


class _SlowSource(ArraySource):
    def read_region(self, level: int, region: tuple[slice, ...]) -> np.ndarray:
        time.sleep(0.2)
        return super().read_region(level, region)


def test_a_slow_source_keeps_the_data_types_range_and_opens_in_bounded_time() -> None:
    """A stalled network file system: sampling gives up after SAMPLE_SECONDS (0.5 s), not after reading its
    sample in 0.2 s pieces (over 40 s here)."""
    source = _SlowSource(np.ones((4000, 4000), np.uint8), "yx", storage_unit=(256, 256))
    started = time.monotonic()
    dataset = build_dataset(source, serve_options(levels=1))
    assert time.monotonic() - started < 5
    attrs = json.loads(bytes(dataset.tree.read_file(".zattrs")))
    assert attrs["omero"]["channels"][0]["window"] == {"min": 0.0, "max": 255.0, "start": 0.0, "end": 255.0}
    assert "took over 0.5 s" in dataset.windows.basis


def test_a_sparse_50_gb_bigtiff_still_mounts_fast(
    tmp_path: Path, counted_reads: list[tuple[tuple[slice, ...], int]]
) -> None:
    path = tmp_path / "sparse.tif"
    # Shape-only writing seeks over the pixel data: a 54 GB file that occupies a few kilobytes.
    tifffile.imwrite(path, shape=(200, 16384, 16384), dtype=np.uint8, bigtiff=True, metadata=None)
    assert path.stat().st_size >= 50 * 10**9
    expected = {"min": 0.0, "max": 255.0, "start": 0.0, "end": 1.0}  # all zeros: a window one unit wide
    started = time.monotonic()
    assert _windows(path) == [expected]
    assert time.monotonic() - started < 5  # about 0.1 s, on a busy machine more
    assert 0 < sum(size for _, size in counted_reads) <= SAMPLE_BYTES
    started = time.monotonic()
    with mounted(path, tmp_path / "sparse.ome.zarr") as mnt:
        assert time.monotonic() - started < 20  # the mount command returns in about 1.5 s
        windows = json.loads((mnt / ".zattrs").read_text())["omero"]["channels"]
        assert [channel["window"] for channel in windows] == [expected]
