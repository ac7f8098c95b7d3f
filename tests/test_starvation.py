"""A slow request never makes an unrelated cheap one wait or fail: a viewer that asks for coarse tiles of a
huge image (minutes each) and then for level-0 tiles gets the level-0 tiles at once, and the coarse work
nobody waits for any more stops."""

from __future__ import annotations

import errno
import os
import threading
import time
from pathlib import Path

import numpy as np
import tifffile
from mounting import mounted
from test_mount import _daemon_pid
from test_request_policy import slow_dataset

from zarrfs.core.requests import RequestPolicy, RequestTimeout

TILE = 256


def sparse_bigtiff(path: Path, side: int, written: int) -> np.ndarray:
    """A side x side uint16 BigTIFF of deflate tiles where only the first ``written`` x ``written`` pixels
    are stored (the rest reads as zeros): 80 GB of pixels for side 200,000 in a 15 MB file. Returns those
    pixels."""
    pixels = np.random.default_rng(1).integers(0, 4000, (written, written), dtype=np.uint16)
    tiles = -(-side // TILE)

    def tile_data() -> object:
        for row in range(tiles):
            for column in range(tiles):
                if row * TILE < written and column * TILE < written:
                    yield pixels[row * TILE : (row + 1) * TILE, column * TILE : (column + 1) * TILE]
                else:
                    yield None  # not stored at all

    tifffile.imwrite(
        path, tile_data(), shape=(side, side), dtype="uint16", tile=(TILE, TILE), bigtiff=True,
        compression="zlib", compressionargs={"level": 1}, metadata=None,
    )  # fmt: skip
    return pixels


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_level_0_tiles_answer_at_once_while_coarse_tiles_of_an_80_gb_image_are_made(tmp_path: Path) -> None:
    source = tmp_path / "sparse.tif"
    side = 200_000
    written = sparse_bigtiff(source, side, 2048)
    timeout = 10  # the cheap tiles below take about a second in all, well inside it
    options = ("--timeout", str(timeout), "--ngff", "0.4", "--chunks", "512,512")
    with mounted(source, tmp_path / "mnt", *options) as mnt:
        assert (mnt / "9" / ".zarray").exists()  # level 9 is one 391x391 chunk: all 80 GB reduced
        coarse = ["9/0/0", "8/0/0", "8/0/1", "8/1/0", "8/1/1", "7/0/0"]  # more than any pool of workers
        coarse_errors: dict[str, int] = {}

        def read_coarse(path: str) -> None:
            try:
                (mnt / path).read_bytes()
            except OSError as error:
                coarse_errors[path] = error.errno or 0

        readers = [threading.Thread(target=read_coarse, args=(path,)) for path in coarse]
        for reader in readers:
            reader.start()
        time.sleep(1)  # every coarse request is being made now

        zeros = np.zeros((512, 512), np.uint16)
        cheap = {
            f"0/{i}/{j}": written[i * 512 : (i + 1) * 512, j * 512 : (j + 1) * 512]
            for i in range(4)
            for j in range(4)
        }
        cheap["0/100/100"] = cheap["0/390/390"] = zeros
        # One computed level down: the mean of 2x2 blocks, rounded half to even.
        blocks = written[:1024, :1024].reshape(512, 2, 512, 2)
        cheap["1/0/0"] = np.rint(blocks.mean(axis=(1, 3))).astype(np.uint16)
        for path, expected in cheap.items():
            started = time.monotonic()
            data = (mnt / path).read_bytes()
            took = time.monotonic() - started
            assert took < 2, f"{path} took {took:.1f} s"
            np.testing.assert_array_equal(np.frombuffer(data, "<u2").reshape(512, 512), expected)
        assert all(reader.is_alive() for reader in readers)  # the cheap tiles did not wait for them

        for reader in readers:
            reader.join(120)
        assert coarse_errors == dict.fromkeys(coarse, errno.EIO)  # each over the time limit
        pid = _daemon_pid(mnt)
        before = _cpu_seconds(pid)
        time.sleep(2)
        assert _cpu_seconds(pid) - before < 0.3  # nobody waits for the coarse work: it stopped
        assert (mnt / "0" / "0" / "0").read_bytes() == written[:512, :512].tobytes()
    assert f"took longer than {timeout} s" in (tmp_path / "zarrfs.log").read_text()


def test_requests_for_stored_levels_never_queue_behind_computed_ones() -> None:
    _, dataset = slow_dataset()  # 10 ms per 32x32 source region
    coarsest = dataset.levels[-1]
    threads_before = set(threading.enumerate())
    policy = RequestPolicy(dataset.tree, timeout=3, workers=2)
    outcomes: list[str] = []

    def read_coarse() -> None:
        try:
            policy.answer(dataset.tree.read, f"{coarsest.name}/0/0", 0, 100)
            outcomes.append("answered")
        except RequestTimeout:
            outcomes.append("timed out")

    try:
        readers = [threading.Thread(target=read_coarse) for _ in range(4)]  # twice the workers
        for reader in readers:
            reader.start()
        time.sleep(0.3)
        started = time.monotonic()
        for row in range(5):
            data = policy.answer(dataset.tree.read, f"0/{row}/7", 0, 32 * 32 * 2)
            expected = dataset.source.data[row * 32 : (row + 1) * 32, 7 * 32 : 8 * 32]  # type: ignore[attr-defined]
            assert bytes(data) == expected.astype("<u2").tobytes()
        assert time.monotonic() - started < 1.5  # 10 ms each, not behind seconds of coarse work
        for reader in readers:
            reader.join(30)
        assert len(outcomes) == 4
        # Bounded: at most ``workers`` threads for each depth asked for (the coarsest one, and level 0).
        started = set(threading.enumerate()) - threads_before
        lanes = [thread.name for thread in started if thread.name.startswith("zarrfs-depth")]
        assert 2 <= len(lanes) <= 4, lanes
    finally:
        policy.close()
