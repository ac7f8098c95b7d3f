"""The disk tier of remote blocks (zarrfs/sources/remote/diskcache.py): reuse across processes, the size
bound, keys that never mix versions, damaged and foreign files, and directories that cannot be written."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from zarrfs.errors import ZarrfsError
from zarrfs.sources.remote.diskcache import (
    SUBDIRECTORY,
    BlockKey,
    DiskCache,
    check_disk_cache_directory,
    parse_disk_cache_size,
)

URL = "https://example.org/data/image.tif"
MiB = 1024**2


def payload(key: BlockKey) -> bytes:
    """Bytes that depend on the key alone: any block read back can be checked against its key."""
    seed = hashlib.sha256(repr(key).encode()).digest()
    return (seed * (key.length // len(seed) + 1))[: key.length]


def block(index: int, length: int = 64 * 1024, version: str = '"etag-1"', url: str = URL) -> BlockKey:
    return BlockKey(url, version, index * length, length)


def files(directory: Path) -> list[Path]:
    return sorted((directory / SUBDIRECTORY).glob("*.blk"))


def stored_bytes(directory: Path) -> int:
    return sum(path.stat().st_size for path in (directory / SUBDIRECTORY).iterdir())


def run_python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_blocks_read_back_and_misses_are_none(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path, 16 * MiB)
    for index in range(5):
        cache.put(block(index), payload(block(index)))
    assert all(cache.get(block(index)) == payload(block(index)) for index in range(5))
    assert cache.get(block(5)) is None
    assert cache.get(block(0, length=1000)) is None  # another length is another block
    assert len(files(tmp_path)) == 5


def test_blocks_are_reused_by_another_process(tmp_path: Path) -> None:
    run_python(f"""
        from tests.test_diskcache import block, payload
        from zarrfs.sources.remote.diskcache import DiskCache
        cache = DiskCache({str(tmp_path)!r}, 16 * 1024**2)
        for index in range(8):
            cache.put(block(index), payload(block(index)))
    """)
    cache = DiskCache(tmp_path, 16 * MiB)  # another process, another mount
    assert all(cache.get(block(index)) == payload(block(index)) for index in range(8))
    cache.put(block(8), payload(block(8)))
    seen = run_python(f"""
        from tests.test_diskcache import block, payload
        from zarrfs.sources.remote.diskcache import DiskCache
        cache = DiskCache({str(tmp_path)!r}, 16 * 1024**2)
        print(sum(cache.get(block(index)) == payload(block(index)) for index in range(9)))
    """)
    assert seen.strip() == "9"


def test_the_size_bound_holds_and_the_least_recently_used_go_first(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path, 1 * MiB)  # room for 15 blocks of 64 KiB and their headers

    def put(index: int) -> None:
        time.sleep(0.01)  # file times (the order a rebuilt index knows) are of the kernel's coarse clock
        cache.put(block(index), payload(block(index)))
        assert stored_bytes(tmp_path) <= 1 * MiB

    for index in range(12):
        put(index)
    assert cache.get(block(0)) == payload(block(0))  # used again: now the most recent
    for index in range(12, 18):  # 18 blocks: the 3 least recently used go
        put(index)
    assert cache.get(block(0)) == payload(block(0))
    assert [cache.get(block(index)) for index in (1, 2, 3)] == [None, None, None]
    assert all(cache.get(block(index)) == payload(block(index)) for index in range(4, 18))
    for index in range(18, 60):
        put(index)
    assert stored_bytes(tmp_path) == cache.stored_bytes() > 14 * 64 * 1024


def test_processes_sharing_a_directory_stay_near_the_bound_and_serve_no_wrong_block(
    tmp_path: Path,
) -> None:
    writer = f"""
        import sys
        from tests.test_diskcache import block, payload
        from zarrfs.sources.remote.diskcache import DiskCache
        cache = DiskCache({str(tmp_path)!r}, 1024**2)
        for index in range(int(sys.argv[1]), int(sys.argv[1]) + 64):
            cache.put(block(index, 32 * 1024), payload(block(index, 32 * 1024)))
            for earlier in range(int(sys.argv[1]), index):
                got = cache.get(block(earlier, 32 * 1024))
                assert got is None or got == payload(block(earlier, 32 * 1024))
    """
    processes = [
        subprocess.Popen([sys.executable, "-c", textwrap.dedent(writer), str(start)], stderr=subprocess.PIPE)
        for start in (0, 1000, 2000)
    ]
    for process in processes:
        _, errors = process.communicate(timeout=120)
        assert process.returncode == 0, errors.decode()
    # Each may exceed the bound by an eighth of it until its next rebuild of the index.
    assert stored_bytes(tmp_path) <= 1 * MiB + 3 * MiB // 8
    cache = DiskCache(tmp_path, 1 * MiB)  # a rebuild at start evicts down to the bound
    assert stored_bytes(tmp_path) <= 1 * MiB
    hits = [
        cache.get(block(index, 32 * 1024)) for start in (0, 1000, 2000) for index in range(start, start + 64)
    ]
    keys = [block(index, 32 * 1024) for start in (0, 1000, 2000) for index in range(start, start + 64)]
    assert sum(hit is not None for hit in hits) >= 20
    assert all(hit is None or hit == payload(key) for hit, key in zip(hits, keys, strict=True))


def test_a_changed_object_never_gets_the_old_blocks(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path, 16 * MiB)
    old, new = block(3, version='"etag-1"'), block(3, version='"etag-2"')
    cache.put(old, b"old bytes" * 100)
    assert cache.get(new) is None
    cache.put(new, b"new bytes" * 100)
    assert cache.get(new) == b"new bytes" * 100
    assert cache.get(old) == b"old bytes" * 100  # asked for by the old version only
    with pytest.raises(ValueError, match="needs the object's version"):
        BlockKey(URL, "", 0, 10)


def test_keys_hold_no_credentials_and_survive_a_new_signature(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path, 16 * MiB)
    signed = "https://user:pa55word@example.org/image.tif?id=7&X-Amz-Signature=5ecret1&X-Amz-Date=20261129"
    resigned = "https://example.org/image.tif?X-Amz-Signature=5ecret2&id=7&X-Amz-Date=20261130"
    cache.put(block(0, url=signed), b"block of image 7")
    assert cache.get(block(0, url=resigned)) == b"block of image 7"
    assert cache.get(block(0, url="https://example.org/image.tif?id=8")) is None  # another object
    on_disk = b"".join(path.read_bytes() + path.name.encode() for path in files(tmp_path))
    for secret in (b"pa55word", b"5ecret1", b"user"):
        assert secret not in on_disk


@pytest.mark.parametrize("damage", ["flipped byte", "cut short", "another key's file", "empty"])
def test_a_damaged_block_file_is_dropped_and_counts_as_a_miss(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    cache = DiskCache(tmp_path, 16 * MiB)
    cache.put(block(0), payload(block(0)))
    cache.put(block(1), payload(block(1)))
    path = next(path for path in files(tmp_path) if path.name.startswith(block(0).digest().hex()))
    content = bytearray(path.read_bytes())
    if damage == "flipped byte":
        content[-100] ^= 0x01
        path.write_bytes(content)
    elif damage == "cut short":
        path.write_bytes(content[:-1])
    elif damage == "another key's file":
        other = next(other for other in files(tmp_path) if other != path)
        path.write_bytes(other.read_bytes())
    else:
        path.write_bytes(b"")
    with caplog.at_level(logging.WARNING, "zarrfs.sources.remote.diskcache"):
        assert cache.get(block(0)) is None
    assert not path.exists()
    assert "disk cache: dropped block file" in caplog.text
    assert cache.get(block(1)) == payload(block(1))
    cache.put(block(0), payload(block(0)))  # fetched again, stored again
    assert cache.get(block(0)) == payload(block(0))


def test_symlinks_are_never_followed(tmp_path: Path) -> None:
    directory, outside = tmp_path / "cache", tmp_path / "outside"
    directory.mkdir()
    outside.mkdir()
    cache = DiskCache(directory, 16 * MiB)
    cache.put(block(0), payload(block(0)))
    good = files(directory)[0]
    (outside / "target.blk").write_bytes(good.read_bytes())
    good.unlink()
    good.symlink_to(outside / "target.blk")
    assert cache.get(block(0)) is None  # a valid block, but behind a symlink: not read
    assert not good.is_symlink() and (outside / "target.blk").exists()
    # The block directory itself replaced by a symlink out of DIR: refused, the cache goes on without it.
    (directory / SUBDIRECTORY).rename(directory / "moved")
    (directory / SUBDIRECTORY).symlink_to(outside)
    cache = DiskCache(directory, 16 * MiB)
    assert not cache.enabled
    cache.put(block(1), payload(block(1)))
    assert list(outside.iterdir()) == [outside / "target.blk"]


@contextlib.contextmanager
def tmpfs(path: Path, size: str, read_only: bool = False) -> Iterator[Path]:
    """A small tmpfs at ``path`` (we run as root), always unmounted."""
    path.mkdir()
    options = f"size={size}" + (",ro" if read_only else "")
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "zarrfs-test", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def test_a_full_disk_is_logged_once_and_the_cache_goes_on_without_its_disk_tier(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with tmpfs(tmp_path / "small", "640k") as directory:
        cache = DiskCache(directory, 16 * MiB)
        with caplog.at_level(logging.ERROR, "zarrfs.sources.remote.diskcache"):
            for index in range(20):  # 20 x 64 KiB do not fit in 640 KiB
                cache.put(block(index), payload(block(index)))
            assert not cache.enabled
            for index in range(20):
                cache.put(block(index), payload(block(index)))
                assert cache.get(block(index)) is None
        errors = [record.getMessage() for record in caplog.records]
        assert len(errors) == 1, errors
        assert "No space left on device; going on without it" in errors[0]
        assert not [path for path in (directory / SUBDIRECTORY).iterdir() if path.name.startswith(".tmp-")]


def test_an_unwritable_directory_is_an_error_at_start_and_logged_once_later(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with tmpfs(tmp_path / "readonly", "1m", read_only=True) as directory:
        with pytest.raises(ZarrfsError) as raised:
            check_disk_cache_directory(str(directory))
        assert str(raised.value) == f"--disk-cache {directory}: cannot write there (Read-only file system)"
        with caplog.at_level(logging.ERROR, "zarrfs.sources.remote.diskcache"):
            cache = DiskCache(directory, 16 * MiB)
            cache.put(block(0), payload(block(0)))
            assert cache.get(block(0)) is None
        assert not cache.enabled
        assert len(caplog.records) == 1
        assert "Read-only file system; going on without it" in caplog.text
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(ZarrfsError, match=r"--disk-cache .*/file: not a directory"):
        check_disk_cache_directory(str(tmp_path / "file"))
    with pytest.raises(ZarrfsError, match=r"--disk-cache .*/file/sub: cannot create it"):
        check_disk_cache_directory(str(tmp_path / "file" / "sub"))
    assert check_disk_cache_directory(str(tmp_path / "new" / "dir")) == tmp_path / "new" / "dir"


def test_disk_cache_size_option() -> None:
    assert parse_disk_cache_size("2GiB") == 2 * 1024**3
    with pytest.raises(ZarrfsError) as raised:
        parse_disk_cache_size("100k")
    assert str(raised.value) == "invalid size '100k' for --disk-cache-size: it must be at least 1.0 MiB"
    with pytest.raises(ZarrfsError, match="invalid size 'lots' for --disk-cache-size"):
        parse_disk_cache_size("lots")
