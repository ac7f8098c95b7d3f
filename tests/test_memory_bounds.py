"""Memory bounded by the options whatever the file says: corrupt byte counts, tiny chunks, huge chunks."""

from __future__ import annotations

import errno
import math
import os
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
from array_source import ArraySource
from mounting import force_unmount, mounted, zarrfs
from test_cli_errors import assert_clean_failure
from test_reliability import daemon_pid, proc_status

from zarrfs.core.chunking import default_chunks
from zarrfs.core.dataset import build_dataset, open_dataset
from zarrfs.core.levels import ChunkReadError
from zarrfs.core.options import serve_options
from zarrfs.errors import SourceError
from zarrfs.sources import Level

MiB = 2**20
TILE = 64
BAD_PAGE, BAD_TILE = 3, 5  # tile 5 of a 4x4 grid: row 1, column 1
BAD_CHUNK = (BAD_PAGE, 1, 1)


def stack() -> np.ndarray:
    values = np.arange(7 * 256 * 256, dtype=np.uint64) * 2654435761 % 65521
    return values.astype(np.uint16).reshape(7, 256, 256)


def write_corrupt_count(path: Path, count: str) -> None:
    """A tiled zlib BigTIFF whose middle page claims ``count`` bytes for one tile: its byte count table is
    rewritten as 64-bit numbers at the end of the file, so any count fits."""
    tifffile.imwrite(
        path, stack(), bigtiff=True, tile=(TILE, TILE), compression="zlib", metadata={"axes": "ZYX"}
    )
    with tifffile.TiffFile(path) as tiff:
        tag = tiff.pages[BAD_PAGE].tags["TileByteCounts"]
        counts = [int(value) for value in tiff.pages[BAD_PAGE].databytecounts]
    size = path.stat().st_size
    counts[BAD_TILE] = {"2^40": 2**40, "1 GiB": 2**30, "file size + 1": size + 1}[count]
    with open(path, "r+b") as handle:
        table = handle.seek(0, os.SEEK_END)
        handle.write(np.asarray(counts, "<u8").tobytes())
        handle.seek(tag.offset + 2)
        handle.write((16).to_bytes(2, "little"))  # type LONG8
        handle.seek(tag.offset + 12)
        handle.write(table.to_bytes(8, "little"))
    with tifffile.TiffFile(path) as tiff:
        assert int(tiff.pages[BAD_PAGE].databytecounts[BAD_TILE]) == counts[BAD_TILE]


COUNTS = ["2^40", "1 GiB", "file size + 1"]
# Served by decoding, and passed through as stored (zlib tiles are v2 zlib chunks).
COMPRESSORS = ["none", "zlib"]


def expected_chunk(index: tuple[int, int, int]) -> np.ndarray:
    z, row, column = index
    return stack()[z : z + 1, row * TILE : (row + 1) * TILE, column * TILE : (column + 1) * TILE]


@pytest.mark.parametrize("compressor", COMPRESSORS)
@pytest.mark.parametrize("count", COUNTS)
def test_corrupt_byte_count_in_a_middle_page_fails_one_chunk_in_process(
    tmp_path: Path, count: str, compressor: str
) -> None:
    path = tmp_path / "corrupt.tif"
    write_corrupt_count(path, count)
    options = serve_options(chunks=f"{TILE},{TILE}", compressor=compressor, levels=1, ngff="0.4")
    dataset = open_dataset(path, options)
    try:
        array = dataset.layouts[0].arrays[0]
        assert (array.native is not None) == (compressor == "zlib")
        tracemalloc.start()
        # Pass-through reads raise the source's error as it is until they report chunk errors like decoded
        # reads do (issue 9 item 12).
        with pytest.raises((ChunkReadError, SourceError), match=f"tile {BAD_TILE} of page {BAD_PAGE} claims"):
            array.chunk_bytes(BAD_CHUNK)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < 16 * MiB, f"reading the corrupt tile allocated {peak} bytes"
        for index in [(2, 1, 1), (BAD_PAGE, 1, 0), (BAD_PAGE, 3, 3), (4, 1, 1)]:
            data = bytes(array.chunk_bytes(index))
            if compressor == "zlib":
                data = zlib.decompress(data)
            np.testing.assert_array_equal(
                np.frombuffer(data, "<u2").reshape(1, TILE, TILE), expected_chunk(index)
            )
    finally:
        dataset.close()


@pytest.mark.parametrize("compressor", COMPRESSORS)
@pytest.mark.parametrize("count", COUNTS)
def test_corrupt_byte_count_through_a_mount_is_eio_and_the_daemon_stays_small(
    tmp_path: Path, count: str, compressor: str
) -> None:
    path = tmp_path / "corrupt.tif"
    write_corrupt_count(path, count)
    options = ("--chunks", f"{TILE},{TILE}", "--compressor", compressor, "--levels", "1", "--ngff", "0.4")
    with mounted(path, tmp_path / "mnt", "--cache-size", "8MiB", *options) as mnt:
        pid = daemon_pid(mnt)
        bad = mnt / "0" / "/".join(map(str, BAD_CHUNK))
        for _ in range(3):  # every read fails the same way, and allocates nothing for the count
            with pytest.raises(OSError) as failure:
                bad.read_bytes()
            # Pass-through: EINVAL until item 12 reports its failures as chunk errors.
            assert failure.value.errno == errno.EIO or compressor == "zlib"
        assert proc_status(pid, "VmHWM") < 200 * MiB
        for z in range(7):
            for row in range(4):
                for column in range(4):
                    if (z, row, column) == BAD_CHUNK:
                        continue
                    data = (mnt / "0" / str(z) / str(row) / str(column)).read_bytes()
                    if compressor == "zlib":
                        data = zlib.decompress(data)
                    served = np.frombuffer(data, "<u2").reshape(1, TILE, TILE)
                    np.testing.assert_array_equal(served, expected_chunk((z, row, column)))
    if compressor == "none":  # pass-through failures are logged with a traceback until item 12
        log = (tmp_path / "zarrfs.log").read_text()
        assert any(f"chunk {BAD_CHUNK}" in line and "claims" in line for line in log.splitlines())
        assert "Traceback" not in log


# ----------------------------------------------------------------------------------------------------------
# Per-chunk overhead


@pytest.fixture
def noise_tiff(tmp_path: Path) -> Path:
    path = tmp_path / "noise.tif"
    data = np.random.default_rng(9).integers(0, 256, (2048, 2048), np.uint8)
    tifffile.imwrite(path, data, tile=(256, 256))
    return path


def test_chunks_so_small_that_overhead_dominates_are_refused(noise_tiff: Path) -> None:
    assert_clean_failure(zarrfs("info", noise_tiff, "--chunks", "1,1"), "--chunks 1,1", "at least 256 bytes")
    assert_clean_failure(zarrfs("info", noise_tiff, "--chunks", "8,16"), "128-byte chunks")
    assert zarrfs("info", noise_tiff, "--chunks", "16,16").returncode == 0


def test_default_chunks_of_tiny_pages_stack_planes() -> None:
    # A stack of 100,000 pages of 16x16 pixels: one chunk per page would be 100,000 chunks of 256 bytes.
    chunks = default_chunks("tzyx", Level((100_000, 3, 16, 16), (1, 1, 16, 16)), 1)
    assert chunks[1:] == (3, 16, 16) and chunks[0] * 3 * 16 * 16 >= 16 * 2**10
    assert default_chunks("zyx", Level((100_000, 16, 16), (1, 16, 16)), 2) == (32, 16, 16)
    # Planes large enough stay one deep (tiles of a big image are not stacked).
    assert default_chunks("zyx", Level((10, 2000, 3000), (1, 256, 256)), 2) == (1, 512, 512)


def test_reading_many_tiny_chunks_keeps_the_daemon_within_the_cache(noise_tiff: Path, tmp_path: Path) -> None:
    cache = 8 * MiB
    options = ("--chunks", "16,16", "--cache-size", str(cache), "--compressor", "zstd", "--ngff", "0.4")
    with mounted(noise_tiff, tmp_path / "mnt", "--levels", "1", *options) as mnt:
        pid = daemon_pid(mnt)
        (mnt / "0" / "0" / "0").read_bytes()
        baseline = proc_status(pid, "VmRSS")
        rows = mnt / "0"
        for row in range(128):
            for column in range(128):
                assert len((rows / str(row) / str(column)).read_bytes()) > 0
        grown = proc_status(pid, "VmHWM") - baseline
    # 16,384 chunks of 256 bytes: before the overhead was counted, the cache kept every one of them (with
    # their encoded copies and sizes), about 1 KiB of objects each beyond the bytes it counted.
    assert grown < cache + 10 * MiB, f"the daemon grew by {grown / MiB:.1f} MiB"


# ----------------------------------------------------------------------------------------------------------
# Chunks larger than the chunk cache


def daemon_rchar(pid: int) -> int:
    return int(Path(f"/proc/{pid}/io").read_text().split("rchar:")[1].split()[0])


def test_chunks_the_cache_cannot_keep_are_refused_and_the_advice_works(tmp_path: Path) -> None:
    path = tmp_path / "big.tif"
    data = np.random.default_rng(6).integers(0, 2**16, (2048, 2048), np.uint16)
    tifffile.imwrite(path, data, tile=(256, 256), compression="zlib")
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    options = ("--chunks", "2048,2048", "--ngff", "0.4", "--levels", "1")
    try:
        result = zarrfs("mount", path, mountpoint, "--cache-size", "8MiB", *options)
    finally:
        force_unmount(mountpoint)  # the mount used to go ahead, and remake the chunk for every 1 MiB read
    assert_clean_failure(result, "chunks of 8.0 MiB", "--cache-size 8.0 MiB leaves 6.0 MiB", "at least 22MiB")
    assert "smaller --chunks" in result.stderr
    # With the cache the message asks for, the chunk, read through FUSE in 1 MiB requests, is made once.
    with mounted(path, mountpoint, "--cache-size", "22MiB", *options) as mnt:
        pid = daemon_pid(mnt)
        before = daemon_rchar(pid)
        served = (mnt / "0" / "0" / "0").read_bytes()
        read = daemon_rchar(pid) - before
    np.testing.assert_array_equal(np.frombuffer(served, "<u2").reshape(data.shape), data)
    size = path.stat().st_size
    assert read < 2 * size, f"the daemon read {read} bytes of a {size}-byte file"


def test_default_chunks_fit_a_small_cache() -> None:
    # Tiles of 16 MiB (2048x2048 uint32) were served as 16 MiB chunks even with --cache-size 8MiB, whose chunk
    # cache (6 MiB) cannot keep one: every read request made the chunk again.
    source = ArraySource(np.zeros((4096, 4096), np.uint32), "yx", storage_unit=(2048, 2048))
    dataset = build_dataset(source, serve_options(cache_size="8MiB"))
    level = dataset.levels[0]
    chunk_bytes = math.prod(level.chunks) * 4
    assert 2 * chunk_bytes <= dataset.cache.capacity_bytes
    level.chunk_pixels((0, 0))
    reads = source.reads
    level.chunk_pixels((0, 0))
    assert source.reads == reads
