"""Reliability through real mounts: a killed daemon, side-by-side mounts, concurrent load with a small cache,
read-only always, unsafe sources refused, sources that change while mounted, busy unmounts, a mount point
reached through a symlink. (A hung daemon and the request time limit: test_mount.py. The whole list of
cases and their tests: RELIABILITY.md.)

Every test here mounts for real (CI runs as root with /dev/fuse). The source files of the module are hashed
when made and checked unchanged (bytes and mtime) after the last test of the module.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tifffile
from mounting import force_unmount, is_mounted, mounted, require_fuse, zarrfs

MiB = 2**20

# ----------------------------------------------------------------------------------------------------------
# Sources, checked unchanged after the module


@dataclass(frozen=True)
class Source:
    path: Path
    image: np.ndarray  # what tifffile reads
    chunks: tuple[int, int]  # --chunks used with it (y, x)


def _fingerprint(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Source]]:
    directory = tmp_path_factory.mktemp("sources")
    rng = np.random.default_rng(5)
    made: dict[str, Source] = {}
    # A z-stack bigger than the load test's cache: 6 x 1024 x 1024 uint16 (12 MiB) in deflate tiles, served in
    # 128x128 chunks (32 KiB) with computed levels (z is halved too: no physical sizes, so z is isotropic).
    stack = rng.integers(0, 65535, (6, 1024, 1024), dtype=np.uint16)
    path = directory / "stack.tif"
    tifffile.imwrite(path, stack, tile=(64, 64), compression="zlib", photometric="minisblack")
    made["stack"] = Source(path, tifffile.imread(path), (128, 128))
    # A small tiled image with partial edge tiles.
    small = rng.integers(0, 65535, (300, 277), dtype=np.uint16)
    path = directory / "small.tif"
    tifffile.imwrite(path, small, tile=(64, 64), compression="zlib")
    made["small"] = Source(path, tifffile.imread(path), (64, 64))
    before = {name: _fingerprint(source.path) for name, source in made.items()}
    yield made
    # After every test of the module: the mounts only ever read their sources.
    after = {name: _fingerprint(source.path) for name, source in made.items()}
    assert after == before, "a source file changed while mounted"


# ----------------------------------------------------------------------------------------------------------
# Helpers


def daemon_pids(mountpoint: Path) -> list[int]:
    """Live zarrfs daemons whose command line names ``mountpoint`` (zombies excluded)."""
    found = []
    needle = str(mountpoint).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        # The mount point as a whole path (followed by a quote, an argument end or nothing), not a prefix.
        named = any(command[end : end + 1] in (b"", b'"', b"\0") for end in _ends_of(command, needle))
        if b"zarrfs" in command and named and state != "Z":
            found.append(int(entry.name))
    return found


def _ends_of(text: bytes, needle: bytes) -> Iterator[int]:
    start = text.find(needle)
    while start >= 0:
        yield start + len(needle)
        start = text.find(needle, start + 1)


def daemon_pid(mountpoint: Path) -> int:
    pids = daemon_pids(mountpoint)
    assert len(pids) == 1, f"expected one daemon for {mountpoint}, found {pids}"
    return pids[0]


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting until {what}"
        time.sleep(0.05)


def proc_status(pid: int, field: str) -> int:
    """A ``kB`` field of /proc/<pid>/status, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"{field} not in /proc/{pid}/status")


def proc_io(pid: int) -> dict[str, int]:
    return {
        key: int(value)
        for key, value in (line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    }


def read_uncached(path: Path) -> bytes:
    """Read a whole file, then drop it from the page cache so that the next read asks the daemon again."""
    fd = os.open(path, os.O_RDONLY)
    try:
        parts = []
        while part := os.read(fd, 1 << 20):
            parts.append(part)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return b"".join(parts)


def errno_of(action: Callable[[], object]) -> int | None:
    try:
        action()
    except OSError as error:
        return error.errno
    return None


def assert_one_error_line(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0, result
    assert len(lines) == 1 and lines[0].startswith("zarrfs: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def padded_chunk(image: np.ndarray, index: tuple[int, ...], chunks: tuple[int, ...]) -> bytes:
    """The chunk at ``index`` as zarrfs serves it uncompressed: full size, zero padded, little-endian."""
    region = tuple(slice(i * c, (i + 1) * c) for i, c in zip(index, chunks, strict=True))
    part = image[region]
    out = np.zeros(chunks, dtype=image.dtype.newbyteorder("<"))
    out[tuple(slice(0, extent) for extent in part.shape)] = part
    return out.tobytes()


def chunk_paths(mnt: Path, level: str, index: tuple[int, ...]) -> list[Path]:
    """The v2 and the v3 file of one chunk."""
    keys = [str(i) for i in index]
    return [mnt.joinpath(level, *keys), mnt.joinpath(level, "c", *keys)]


def levels_of(mnt: Path) -> list[tuple[str, tuple[int, ...], tuple[int, ...]]]:
    """(path, shape, chunks) of every level, from the v2 metadata."""
    attrs = json.loads((mnt / ".zattrs").read_text())
    out = []
    for dataset in attrs["multiscales"][0]["datasets"]:
        zarray = json.loads((mnt / dataset["path"] / ".zarray").read_text())
        out.append((dataset["path"], tuple(zarray["shape"]), tuple(zarray["chunks"])))
    return out


# ----------------------------------------------------------------------------------------------------------
# Lifecycle: a killed daemon, two mounts side by side


def test_a_sigkilled_daemon_leaves_a_stale_mount_that_mount_reports_and_unmount_clears(
    sources: dict[str, Source], tmp_path: Path
) -> None:
    source = sources["small"]
    expected_first_chunk = padded_chunk(source.image, (0, 0), source.chunks)
    chunk_option = ("--chunks", "64,64")
    with mounted(source.path, tmp_path / "mnt", *chunk_option) as mnt:
        assert read_uncached(mnt / "0" / "0" / "0") == expected_first_chunk
        pid = daemon_pid(mnt)
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not daemon_pids(mnt), 30, "the killed daemon is gone")
        # What a user sees: "Transport endpoint is not connected" (or, depending on how the kernel noticed the
        # daemon's end, "Software caused connection abort"), and the mount point stays in the mount table.
        gone = (errno.ENOTCONN, errno.ECONNABORTED)
        assert errno_of(lambda: os.listdir(mnt)) in gone
        assert errno_of(lambda: (mnt / ".zgroup").read_bytes()) in gone
        assert errno_of(lambda: os.statvfs(mnt)) in gone
        assert is_mounted(mnt)
        # The next mount there says what is wrong and how to fix it.
        again = zarrfs("mount", source.path, mnt, *chunk_option, timeout=60)
        assert_one_error_line(again, "stale", "zarrfs unmount")
        cleared = zarrfs("unmount", mnt, timeout=60)
        assert cleared.returncode == 0, cleared.stderr
        assert not is_mounted(mnt)
        # And a new mount works; the context manager unmounts it.
        fresh = zarrfs("mount", source.path, mnt, "--log-file", tmp_path / "again.log", *chunk_option)
        assert fresh.returncode == 0, fresh.stderr
        assert read_uncached(mnt / "0" / "0" / "0") == expected_first_chunk
        assert json.loads((mnt / ".zgroup").read_text()) == {"zarr_format": 2}


def test_two_mounts_of_one_source_serve_equal_bytes_and_outlive_each_other(
    sources: dict[str, Source], tmp_path: Path
) -> None:
    source = sources["small"]
    both = ("--chunks", "64,64", "--ngff", "all")
    with mounted(source.path, tmp_path / "a" / "mnt", *both) as first:
        with mounted(source.path, tmp_path / "b" / "mnt", *both) as second:
            assert daemon_pid(first) != daemon_pid(second)
            files = sorted(path.relative_to(first) for path in first.rglob("*") if path.is_file())
            assert len(files) > 40  # documents, and chunk files of every level in both layouts
            for relative in files:
                assert read_uncached(first / relative) == read_uncached(second / relative), relative
        assert not is_mounted(tmp_path / "b" / "mnt")
        # The first mount is untouched by the second one's unmount.
        for y in range(5):
            for x in range(5):
                expected = padded_chunk(source.image, (y, x), source.chunks)
                for path in chunk_paths(first, "0", (y, x)):
                    assert read_uncached(path) == expected, path


# ----------------------------------------------------------------------------------------------------------
# Load: 16 readers, every level, both layouts, a cache far smaller than the data

READERS = 16
# 40k reads take about 15-20 s on 2 cores (2,200-2,700 reads a second). The 100k reads take about 40 s
# (ZARRFS_LOAD_READS=100000): more than this file's share of CI time.
TOTAL_READS = int(os.environ.get("ZARRFS_LOAD_READS", "40000"))
WARM_UP_READS = 2000
STALL_LIMIT_S = 60.0
CACHE_SIZE = 8 * MiB
MAX_RSS_GROWTH = 64 * MiB
RSS_ALLOWANCE = 250 * MiB


def block_mean(pixels: np.ndarray, factors: tuple[int, ...]) -> np.ndarray:
    """The mean of every ``factors`` block of integer ``pixels``, rounded half to even; blocks cut short by
    the edge average the pixels they have (README: computed levels). Written here, independent of zarrfs."""
    shape = tuple(-(-extent // factor) for extent, factor in zip(pixels.shape, factors, strict=True))
    padded = np.full([extent * factor for extent, factor in zip(shape, factors, strict=True)], np.nan)
    padded[tuple(slice(0, extent) for extent in pixels.shape)] = pixels
    blocks = padded.reshape([size for pair in zip(shape, factors, strict=True) for size in pair])
    means = np.nanmean(blocks, axis=tuple(range(1, 2 * len(shape), 2)))
    return np.rint(means).astype(pixels.dtype)


def reference_pyramid(image: np.ndarray, plane_chunk: tuple[int, int]) -> list[np.ndarray]:
    """Level 0 and the computed levels of a z-stack without physical sizes (so z counts as isotropic and is
    halved with y and x while it can be): each level the block mean of the one before, down to the level
    whose plane fits in one chunk."""
    levels = [image]
    while levels[-1].shape[1] > plane_chunk[0] or levels[-1].shape[2] > plane_chunk[1]:
        previous = levels[-1]
        levels.append(block_mean(previous, (2 if previous.shape[0] > 1 else 1, 2, 2)))
    return levels


def _reference_chunks(source: Source, mnt: Path) -> dict[str, bytes]:
    """Expected bytes of every chunk file (both layouts) of every level: level 0 as tifffile reads it, the
    computed levels by block means in numpy (reference_pyramid)."""
    served_levels = levels_of(mnt)
    pyramid = reference_pyramid(source.image, source.chunks)
    assert [shape for _, shape, _ in served_levels] == [level.shape for level in pyramid]
    expected: dict[str, bytes] = {}
    for (level, shape, chunks), pixels in zip(served_levels, pyramid, strict=True):
        grid = [-(-extent // chunk) for extent, chunk in zip(shape, chunks, strict=True)]
        for index in np.ndindex(*grid):
            data = padded_chunk(pixels, index, chunks)
            for path in chunk_paths(mnt, level, index):
                expected[str(path.relative_to(mnt))] = data
    return expected


def test_sixteen_readers_random_chunks_small_cache_exact_bytes_bounded_memory(
    sources: dict[str, Source], tmp_path: Path
) -> None:
    source = sources["stack"]
    options = (
        "--chunks",
        "128,128",
        "--cache-size",
        f"{CACHE_SIZE}",
        "--compressor",
        "none",
        "--ngff",
        "all",
    )
    with mounted(source.path, tmp_path / "mnt", *options) as mnt:
        expected = _reference_chunks(source, mnt)
        levels = {key.split("/")[0] for key in expected}
        assert len(levels) >= 3 and any("/c/" in key for key in expected)
        data_bytes = sum(len(value) for value in expected.values()) // 2
        assert data_bytes > 1.5 * CACHE_SIZE  # the cache cannot hold the data: reads evict
        keys = sorted(expected)
        pid = daemon_pid(mnt)

        progress = [0] * READERS
        mismatches: list[str] = []
        errors: list[str] = []
        stop = threading.Event()
        warm = threading.Event()
        samples: dict[str, int] = {}

        def reader(number: int) -> None:
            rng = random.Random(number)
            for _ in range(TOTAL_READS // READERS):
                if stop.is_set():
                    return
                key = rng.choice(keys)
                try:
                    data = read_uncached(mnt / key)
                except OSError as error:
                    errors.append(f"{key}: {error}")
                    return
                if data != expected[key]:
                    mismatches.append(key)
                progress[number] += 1

        threads = [threading.Thread(target=reader, args=(n,), daemon=True) for n in range(READERS)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        last_total, last_change = 0, time.monotonic()
        try:
            while any(thread.is_alive() for thread in threads):
                time.sleep(0.2)
                total = sum(progress)
                if total != last_total:
                    last_total, last_change = total, time.monotonic()
                if not warm.is_set() and total >= WARM_UP_READS:
                    warm.set()
                    samples["rss_warm"] = proc_status(pid, "VmRSS")
                    samples["reads_warm"] = total
                    samples.update({f"warm_{key}": value for key, value in proc_io(pid).items()})
                if time.monotonic() - last_change > STALL_LIMIT_S:
                    raise AssertionError(
                        f"deadlock: no read finished for {STALL_LIMIT_S} s after {total} reads"
                    )
            samples["rss_end"] = proc_status(pid, "VmRSS")
            samples.update({f"end_{key}": value for key, value in proc_io(pid).items()})
        finally:
            stop.set()
            if any(thread.is_alive() for thread in threads):
                # Unblock readers stuck in the kernel: kill the daemon (the mount then answers ENOTCONN).
                os.kill(pid, signal.SIGKILL)
                for thread in threads:
                    thread.join(timeout=30)
        elapsed = time.monotonic() - started

    done = sum(progress)
    assert not errors, errors[:5]
    assert not mismatches, f"{len(mismatches)} chunk reads differed, e.g. {mismatches[:5]}"
    assert done == READERS * (TOTAL_READS // READERS)
    # The reads reached the daemon (the page cache was dropped after each): it wrote every chunk to the
    # kernel, and with a cache far below the data it read the source again and again.
    chunk_bytes = min(len(value) for value in expected.values())
    written = samples["end_wchar"] - samples["warm_wchar"]
    read_from_source = samples["end_rchar"] - samples["warm_rchar"]
    reads_after_warm_up = done - samples["reads_warm"]
    assert written >= 0.9 * reads_after_warm_up * chunk_bytes, (written, reads_after_warm_up)
    assert read_from_source > 2 * source.path.stat().st_size, read_from_source
    # Memory stays within its bound and does not grow with the number of reads.
    growth = samples["rss_end"] - samples["rss_warm"]
    assert growth < MAX_RSS_GROWTH, f"daemon RSS grew by {growth / MiB:.0f} MiB over {done} reads"
    rss_end = samples["rss_end"]
    assert rss_end < CACHE_SIZE + RSS_ALLOWANCE, f"daemon RSS {rss_end / MiB:.0f} MiB"
    rss_warm = samples["rss_warm"]
    print(
        f"{done} reads in {elapsed:.1f} s ({done / elapsed:.0f}/s); daemon RSS {rss_warm / MiB:.0f}"
        f" -> {rss_end / MiB:.0f} MiB; source bytes read {read_from_source / MiB:.0f} MiB"
    )


# ----------------------------------------------------------------------------------------------------------
# Read-only, always


def test_every_write_type_operation_gets_erofs_on_files_and_directories_of_both_layouts(
    sources: dict[str, Source], tmp_path: Path
) -> None:
    source = sources["small"]
    with mounted(source.path, tmp_path / "mnt", "--chunks", "64,64", "--ngff", "all") as mnt:
        files = [".zgroup", ".zattrs", "zarr.json", "0/.zarray", "0/zarr.json", "0/0/0", "0/c/0/0", "1/0/0"]
        directories = ["", "0", "0/c", "0/0", "0/c/0", "1"]
        before = {name: read_uncached(mnt / name) for name in files}
        attempts: dict[str, Callable[[], object]] = {}
        for name in files:
            path = mnt / name
            attempts |= {
                f"write {name}": lambda path=path: os.close(os.open(path, os.O_WRONLY)),
                f"read-write {name}": lambda path=path: os.close(os.open(path, os.O_RDWR)),
                f"append {name}": lambda path=path: os.close(os.open(path, os.O_WRONLY | os.O_APPEND)),
                f"open-truncate {name}": lambda path=path: os.close(os.open(path, os.O_RDONLY | os.O_TRUNC)),
                f"truncate {name}": lambda path=path: os.truncate(path, 0),
                f"unlink {name}": lambda path=path: os.unlink(path),
                f"rename {name}": lambda path=path: os.rename(path, path.with_name("moved")),
                f"chmod {name}": lambda path=path: os.chmod(path, 0o666),
                f"chown {name}": lambda path=path: os.chown(path, 1, 1),
                f"setxattr {name}": lambda path=path: os.setxattr(path, "user.tag", b"x"),
                f"removexattr {name}": lambda path=path: os.removexattr(path, "user.tag"),
                f"utime {name}": lambda path=path: os.utime(path, (1, 1)),
                f"link {name}": lambda path=path: os.link(path, path.with_name("hardlink")),
            }
        for name in directories:
            path = mnt / name
            attempts |= {
                f"create in /{name}": lambda path=path: os.close(
                    os.open(path / "new", os.O_CREAT | os.O_WRONLY)
                ),
                f"mkdir in /{name}": lambda path=path: os.mkdir(path / "newdir"),
                f"mkfifo in /{name}": lambda path=path: os.mkfifo(path / "fifo"),
                f"symlink in /{name}": lambda path=path: os.symlink(".zgroup", path / "link"),
                f"link into /{name}": lambda path=path: os.link(mnt / ".zgroup", path / "hardlink"),
                f"chmod /{name}": lambda path=path: os.chmod(path, 0o777),
                f"chown /{name}": lambda path=path: os.chown(path, 1, 1),
                f"setxattr /{name}": lambda path=path: os.setxattr(path, "user.tag", b"x"),
                f"utime /{name}": lambda path=path: os.utime(path, (1, 1)),
            }
            if name:  # the mount point itself belongs to the file system around it
                attempts |= {
                    f"rmdir /{name}": lambda path=path: os.rmdir(path),
                    f"rename /{name}": lambda path=path: os.rename(path, path.with_name("moved")),
                }
        outcomes = {what: errno_of(attempt) for what, attempt in attempts.items()}
        wrong = {
            what: errno.errorcode.get(code, code) for what, code in outcomes.items() if code != errno.EROFS
        }
        assert not wrong, f"not refused with EROFS: {wrong}"
        assert len(outcomes) > 150
        # Nothing changed, and the mount still serves.
        assert {name: read_uncached(mnt / name) for name in files} == before
        assert not (set(os.listdir(mnt)) & {"new", "newdir", "fifo", "link", "hardlink", "moved"})
        assert before["0/0/0"] == padded_chunk(source.image, (0, 0), source.chunks)


# ----------------------------------------------------------------------------------------------------------
# Safe defaults: a source inside the mount point (allow_other: test_mount.py)


def test_a_source_reached_through_symlinks_or_dots_into_the_mount_point_is_refused(tmp_path: Path) -> None:
    require_fuse()
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    link_to_inside = tmp_path / "image.tif"
    link_to_inside.symlink_to(mnt / "image.tif")  # dangling now; would resolve into the mount once mounted
    link_to_mnt = tmp_path / "mnt-link"
    link_to_mnt.symlink_to(mnt)
    cases = [
        (link_to_inside, mnt),
        (tmp_path / "other" / ".." / "mnt" / "0" / "img.tif", mnt),
        (mnt / "img.tif", link_to_mnt),
    ]
    try:
        for source, mountpoint in cases:
            result = zarrfs("mount", source, mountpoint, timeout=30)
            assert_one_error_line(result, "lies inside the mount point")
            assert not is_mounted(mnt)
    finally:
        force_unmount(mnt)


def test_a_mount_point_given_through_a_symlink_mounts_promptly(
    sources: dict[str, Source], tmp_path: Path
) -> None:
    require_fuse()
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    link = tmp_path / "mnt-link"
    link.symlink_to(mnt)
    try:
        started = time.monotonic()
        try:
            result = zarrfs(
                "mount", sources["small"].path, link, "--log-file", tmp_path / "zarrfs.log", timeout=20
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"zarrfs mount did not return within 20 s (mounted at {mnt}: {is_mounted(mnt)})")
        assert result.returncode == 0, result.stderr
        assert time.monotonic() - started < 20
        assert is_mounted(mnt)
        assert json.loads((link / ".zgroup").read_text()) == {"zarr_format": 2}
        unmounted = zarrfs("unmount", link, timeout=30)
        assert unmounted.returncode == 0, unmounted.stderr
        assert not is_mounted(mnt)
    finally:
        force_unmount(mnt)
        for pid in daemon_pids(link) + daemon_pids(mnt):
            os.kill(pid, signal.SIGKILL)


# ----------------------------------------------------------------------------------------------------------
# A source that changes while mounted


def _image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 65535, (128, 128), dtype=np.uint16)


def _write(path: Path, image: np.ndarray, raw: bool) -> None:
    tifffile.imwrite(path, image, tile=(32, 32), compression=None if raw else "zlib")


def _replace(path: Path, new: np.ndarray, raw: bool) -> None:
    staged = path.with_name("staged.tif")
    _write(staged, new, raw)
    os.replace(staged, path)


def _rewrite_in_place(path: Path, new: np.ndarray, raw: bool) -> None:
    staged = path.with_name("staged.tif")
    _write(staged, new, raw)
    data = staged.read_bytes()
    assert len(data) == path.stat().st_size  # uncompressed: same size, same layout, other pixels
    with open(path, "r+b") as handle:  # same inode, same size: only the mtime tells
        handle.write(data)


def _truncate(path: Path, new: np.ndarray, raw: bool) -> None:
    os.truncate(path, path.stat().st_size // 2)


def _delete(path: Path, new: np.ndarray, raw: bool) -> None:
    path.unlink()


CHANGES: dict[str, tuple[Callable[[Path, np.ndarray, bool], None], bool, str]] = {
    # name: (change, uncompressed tiles served as they are stored (pass-through) rather than decoded,
    # the cause the log gives)
    "replaced_by_another_image_of_the_same_shape": (_replace, False, "was replaced by another file"),
    "rewritten_in_place_same_size": (_rewrite_in_place, True, "was modified"),
    "truncated": (_truncate, False, "changed size"),
    "truncated_under_passthrough": (_truncate, True, "changed size"),
    "deleted": (_delete, False, "was deleted"),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_source_changed_while_mounted_gives_eio_never_new_or_mixed_bytes(
    change: str, tmp_path: Path
) -> None:
    from block_reference import block_reduce

    alter, raw, cause = CHANGES[change]
    old, new = _image(1), _image(2)
    source = tmp_path / "source.tif"
    _write(source, old, raw)
    # Expected bytes of every chunk file of the OLD image, from the pixels tifffile reads: three levels in
    # 32x32 chunks (each the rounded 2x2 mean of the one above), the same bytes in both layouts.
    old_bytes: dict[str, bytes] = {}
    level = tifffile.imread(source)
    for name in ("0", "1", "2"):
        for index in np.ndindex(*(-(-extent // 32) for extent in level.shape)):
            keys = "/".join(map(str, index))
            old_bytes[f"{name}/{keys}"] = old_bytes[f"{name}/c/{keys}"] = padded_chunk(level, index, (32, 32))
        level = block_reduce(level, (2, 2), "mean")
    log = tmp_path / "zarrfs.log"
    with mounted(source, tmp_path / "mnt", "--chunks", "32,32", "--ngff", "all") as mnt:
        documents = {
            name: (mnt / name).read_bytes() for name in (".zgroup", ".zattrs", "zarr.json", "0/.zarray")
        }
        read_before = [key for key in old_bytes if key.startswith("0/0/")]  # one row of chunks, v2 only
        for key in read_before:
            assert read_uncached(mnt / key) == old_bytes[key]
        if raw:
            assert (mnt / "0" / ".zarray").exists()
        alter(source, new, raw)

        refused: list[str] = []
        for key in sorted(old_bytes):
            lines_before = len(log.read_text().splitlines())
            try:
                data = read_uncached(mnt / key)
            except OSError as error:
                assert error.errno == errno.EIO, (key, error)
                refused.append(key)
                new_lines = log.read_text().splitlines()[lines_before:]
                # One log line per refused read, plus one when the change is first seen; a file opened before
                # the change fails in read, where the kernel asks once more after a failed read-ahead.
                allowed = 1 + (not refused[:-1]) + (key in read_before)
                assert 1 <= len(new_lines) <= allowed, (key, new_lines)
                assert all("ERROR" in line and "Traceback" not in line for line in new_lines), new_lines
            else:
                # Never new bytes, never a mix: a chunk still served is exactly the old one.
                assert data == old_bytes[key], f"{key}: served bytes that are not the old image's"
                assert key in read_before, f"{key}: first read after the change was served, not refused"
        assert set(old_bytes) - set(read_before) <= set(refused)
        # Metadata keeps working, unchanged.
        for name, data in documents.items():
            assert (mnt / name).read_bytes() == data
        assert "zarr.json" in os.listdir(mnt / "0")
    text = log.read_text()
    assert "Traceback" not in text
    assert f"source {source} {cause}" in text, text[-2000:]
    # Remounting serves the file as it is now, or says why it cannot.
    if change.startswith(("replaced", "rewritten")):
        with mounted(source, tmp_path / "again", "--chunks", "32,32") as mnt:
            assert read_uncached(mnt / "0" / "0" / "0") == padded_chunk(new, (0, 0), (32, 32))
    else:
        (tmp_path / "again").mkdir()
        result = zarrfs("mount", source, tmp_path / "again", timeout=60)
        assert_one_error_line(result, "truncated" if change.startswith("truncated") else "not found")
        assert not is_mounted(tmp_path / "again")


# ----------------------------------------------------------------------------------------------------------
# Unmounting a busy mount (a hung daemon: test_mount.py::test_unmount_returns_while_the_daemon_hangs_...)

HOLDER = """
import hashlib, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
print("open", flush=True)
sys.stdin.readline()
print(hashlib.sha256(os.pread(fd, 1 << 20, 0)).hexdigest(), flush=True)
sys.stdin.readline()
"""


def test_a_busy_mount_refuses_plain_unmount_with_a_hint_and_lazy_unmount_detaches_it(
    sources: dict[str, Source], tmp_path: Path
) -> None:
    source = sources["small"]
    expected = padded_chunk(source.image, (1, 1), source.chunks)
    mnt = tmp_path / "mnt"
    with mounted(source.path, mnt, "--chunks", "64,64") as live:
        pid = daemon_pid(live)
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(live / "0" / "1" / "1")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None and holder.stdin is not None
            assert holder.stdout.readline().strip() == "open"
            started = time.monotonic()
            busy = zarrfs("unmount", live, timeout=30)
            assert time.monotonic() - started < 30
            assert_one_error_line(busy, "busy", "--lazy")
            assert is_mounted(live) and read_uncached(live / "0" / "1" / "1") == expected  # still serving
            lazy = zarrfs("unmount", "--lazy", live, timeout=30)
            assert lazy.returncode == 0, lazy.stderr
            assert not is_mounted(live)
            # The open file still reads through the detached mount ...
            holder.stdin.write("read\n")
            holder.stdin.flush()
            assert holder.stdout.readline().strip() == hashlib.sha256(expected).hexdigest()
            # ... and once it is closed the daemon ends by itself.
            holder.stdin.write("exit\n")
            holder.stdin.flush()
            assert holder.wait(timeout=30) == 0
            wait_until(lambda: not daemon_pids(live), 30, "the daemon of the detached mount exits")
            # Mount again so that mounted() has something to unmount.
            again = zarrfs("mount", source.path, live, "--log-file", tmp_path / "again.log")
            assert again.returncode == 0, again.stderr
            assert daemon_pid(live) != pid
        finally:
            if holder.poll() is None:
                holder.kill()
                holder.wait()
