"""A source that changes while served: no byte of the changed file is ever served, from any file handle,
whenever it was opened.

One test per field of the identity a source file is watched by (device, inode, size, mtime, ctime), each
changing that field first in the order they are compared and asserting its own message: dropping any one
comparison fails its test. Then files opened (and mapped) before an in-place rewrite and read after it, a
chunk read before the change and read again through the same open file, a change during a read or while
the source is being opened, and the other files of a multi-file OME-TIFF. Expected pixels come from tifffile.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import tifffile
from array_source import ArraySource
from mounting import mounted
from test_reliability import padded_chunk, read_uncached
from tiff_cases import ome_multi_file

from zarrfs.core import build_dataset, open_dataset
from zarrfs.core.options import serve_options
from zarrfs.core.staleness import RECHECK_S, SourceChangedError
from zarrfs.core.tree import VirtualTree, WouldBlock

CHUNKS = (32, 32)
# What the log and the error say for each field of the identity, when it is the first that differs.
MESSAGES = {
    "device": "was replaced by a file on another device",
    "inode": "was replaced by another file",
    "size": "changed size",
    "mtime": "was modified (its modification time changed)",
    "ctime": "was changed with its modification time kept",
}


def _image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 65535, (128, 128), dtype=np.uint16)


def _write(path: Path, image: np.ndarray) -> None:
    """Uncompressed tiles: a rewrite with other pixels keeps the size and the layout."""
    tifffile.imwrite(path, image, tile=CHUNKS)


def _rewrite_in_place(path: Path, image: np.ndarray) -> None:
    """Other pixels into the same inode, same size: only the times tell."""
    staged = path.with_name("staged.tif")
    _write(staged, image)
    data = staged.read_bytes()
    assert len(data) == path.stat().st_size
    with open(path, "r+b") as handle:
        handle.write(data)


def _causes(text: str) -> list[str]:
    return [field for field, message in MESSAGES.items() if message in text]


@contextlib.contextmanager
def _served(tmp_path: Path, *options: str) -> Iterator[tuple[Path, Path, np.ndarray]]:
    """A mounted 128x128 uint16 image in 32x32 chunks: (source, mount point, its pixels as tifffile reads)."""
    source = tmp_path / "source.tif"
    _write(source, _image(1))
    with mounted(source, tmp_path / "mnt", "--ngff", "all", "--chunks", "32,32", *options) as mnt:
        yield source, mnt, tifffile.imread(source)


def _assert_refused(mnt: Path, log: Path, field: str) -> None:
    """Every chunk file not read yet gives EIO; the log names ``field``'s change, and only that."""
    for key in ("0/1/1", "0/c/2/3", "1/0/1", "2/0/0"):
        with pytest.raises(OSError) as error:
            read_uncached(mnt / key)
        assert error.value.errno == errno.EIO, key
    text = log.read_text()
    assert _causes(text) == [field], text[-2000:]
    assert "Traceback" not in text
    assert (mnt / "zarr.json").read_bytes()  # metadata still served


# ----------------------------------------------------------------------------------------------------------
# One test per identity field


def test_a_source_on_another_device_is_refused_with_its_own_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    source = tmp_path / "source.tif"
    _write(source, _image(1))
    dataset = open_dataset(source, serve_options(chunks="32,32"))
    try:
        tree = dataset.tree
        assert tree.read_file("0/0/0") == padded_chunk(tifffile.imread(source), (0, 0), CHUNKS)
        real_stat = os.stat

        def on_another_device(path: str | os.PathLike[str], *args: object, **kwargs: object) -> object:
            status = real_stat(path, *args, **kwargs)  # type: ignore[arg-type]
            if os.fspath(path) != str(source):
                return status
            # Everything else as it was: another filesystem with the same inode number, size and times.
            fields = ("st_ino", "st_size", "st_mtime_ns", "st_ctime_ns")
            return SimpleNamespace(
                st_dev=status.st_dev + 1, **{name: getattr(status, name) for name in fields}
            )

        monkeypatch.setattr(os, "stat", on_another_device)
        with caplog.at_level(logging.ERROR), pytest.raises(SourceChangedError) as error:
            tree.read_file("0/1/1")
    finally:
        dataset.close()
    assert error.value.errno == errno.EIO
    assert _causes(str(error.value)) == ["device"]
    assert _causes(caplog.text) == ["device"]


def test_a_source_replaced_by_an_identical_copy_is_refused_as_another_file(tmp_path: Path) -> None:
    with _served(tmp_path) as (source, mnt, old):
        assert read_uncached(mnt / "0" / "0" / "0") == padded_chunk(old, (0, 0), CHUNKS)
        before = source.stat()
        copy = tmp_path / "copy.tif"
        shutil.copy2(source, copy)  # same bytes, same mtime, another inode
        os.replace(copy, source)
        after = source.stat()
        assert (after.st_dev, after.st_size, after.st_mtime_ns) == (
            before.st_dev,
            before.st_size,
            before.st_mtime_ns,
        )
        assert after.st_ino != before.st_ino
        _assert_refused(mnt, tmp_path / "zarrfs.log", "inode")


def test_a_source_that_grows_is_refused_with_its_size_change(tmp_path: Path) -> None:
    with _served(tmp_path) as (source, mnt, old):
        assert read_uncached(mnt / "0" / "0" / "0") == padded_chunk(old, (0, 0), CHUNKS)
        with open(source, "ab") as handle:  # the image itself is unchanged: bytes after its last tile
            handle.write(b"\0" * 16)
        _assert_refused(mnt, tmp_path / "zarrfs.log", "size")


def test_a_source_rewritten_in_place_is_refused_as_modified(tmp_path: Path) -> None:
    with _served(tmp_path) as (source, mnt, old):
        assert read_uncached(mnt / "0" / "0" / "0") == padded_chunk(old, (0, 0), CHUNKS)
        before = source.stat()
        _rewrite_in_place(source, _image(2))
        assert source.stat().st_mtime_ns != before.st_mtime_ns
        _assert_refused(mnt, tmp_path / "zarrfs.log", "mtime")


def test_a_rewrite_that_restores_the_old_mtime_is_refused_by_its_ctime(tmp_path: Path) -> None:
    with _served(tmp_path) as (source, mnt, old):
        assert read_uncached(mnt / "0" / "0" / "0") == padded_chunk(old, (0, 0), CHUNKS)
        reference, new = tmp_path / "reference.tif", tmp_path / "new.tif"
        subprocess.run(["cp", "-p", str(source), str(reference)], check=True)
        _write(new, _image(2))
        before = source.stat()
        time.sleep(0.05)  # the ctime moves on by more than a clock tick
        # As a user would: other pixels written over the file, then its old modification time put back.
        subprocess.run(
            ["sh", "-c", 'cat "$1" > "$2" && touch -r "$3" "$2"', "sh", new, source, reference], check=True
        )
        after = source.stat()
        assert (after.st_dev, after.st_ino, after.st_size) == (before.st_dev, before.st_ino, before.st_size)
        assert after.st_mtime_ns == before.st_mtime_ns and after.st_ctime_ns != before.st_ctime_ns
        _assert_refused(mnt, tmp_path / "zarrfs.log", "ctime")


# ----------------------------------------------------------------------------------------------------------
# Files open before the change


@pytest.mark.parametrize("passthrough", ["auto", "off"])
def test_files_open_before_an_in_place_rewrite_give_eio_after_it_never_new_bytes(
    passthrough: str, tmp_path: Path
) -> None:
    new = _image(2)
    with _served(tmp_path, "--passthrough", passthrough) as (source, mnt, old):
        # One chunk read before the change (the daemon may hold it), one only opened.
        read_first = os.open(mnt / "0" / "0" / "0", os.O_RDONLY)
        opened = os.open(mnt / "0" / "1" / "1", os.O_RDONLY)
        try:
            assert os.pread(read_first, 1 << 20, 0) == padded_chunk(old, (0, 0), CHUNKS)
            os.posix_fadvise(read_first, 0, 0, os.POSIX_FADV_DONTNEED)  # the next read asks the daemon
            _rewrite_in_place(source, new)
            with pytest.raises(OSError) as error:
                os.pread(opened, 1 << 20, 0)
            assert error.value.errno == errno.EIO
            # A chunk made before the change, read again through the file open since: refused too, once the
            # last check is older than the re-check interval (reads within it may still get the old bytes).
            time.sleep(3 * RECHECK_S)
            with pytest.raises(OSError) as error:
                os.pread(read_first, 1 << 20, 0)
            assert error.value.errno == errno.EIO
        finally:
            os.close(read_first)
            os.close(opened)
    assert _causes((tmp_path / "zarrfs.log").read_text()) == ["mtime"]


MAPPER = """
import hashlib, mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
mapped = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
print("mapped", flush=True)
sys.stdin.readline()
print(hashlib.sha256(mapped[:]).hexdigest(), flush=True)
"""


def test_a_chunk_file_mapped_before_an_in_place_rewrite_faults_after_it_never_new_bytes(
    tmp_path: Path,
) -> None:
    new = _image(2)
    with _served(tmp_path, "--passthrough", "off") as (source, mnt, _):
        mapper = subprocess.Popen(
            [sys.executable, "-c", MAPPER, str(mnt / "0" / "1" / "1")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert mapper.stdout is not None and mapper.stdin is not None
            assert mapper.stdout.readline().strip() == "mapped"
            _rewrite_in_place(source, new)
            mapper.stdin.write("read\n")
            mapper.stdin.flush()
            printed = mapper.stdout.read()
            # The page fault's read fails with EIO: the kernel sends SIGBUS, no byte reaches the mapping.
            assert mapper.wait(timeout=60) == -signal.SIGBUS, printed
            assert hashlib.sha256(padded_chunk(new, (1, 1), CHUNKS)).hexdigest() not in printed
        finally:
            if mapper.poll() is None:
                mapper.kill()
                mapper.wait()


# ----------------------------------------------------------------------------------------------------------
# In-process: a change during a read, the other files of a multi-file OME-TIFF, a change while opening


class _ChangingDuringRead(ArraySource):
    """Pixels from memory, watched through a real file that ``alter`` changes during the first read."""

    def __init__(self, data: np.ndarray, path: Path, alter: Callable[[Path], None]) -> None:
        super().__init__(data, "yx")
        self.path = str(path)
        self._alter: Callable[[Path], None] | None = alter

    def read_region(self, level: int, region: tuple[slice, ...]) -> np.ndarray:
        pixels = super().read_region(level, region)
        if self._alter is not None:
            self._alter(Path(self.path))
            self._alter = None
        return pixels


def _touch_forward(path: Path) -> None:
    status = path.stat()
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns + 10**9))


def test_a_change_during_a_read_drops_the_chunk_it_made(tmp_path: Path) -> None:
    watched = tmp_path / "watched"
    watched.write_bytes(b"source")
    data = np.arange(128 * 128, dtype=np.uint16).reshape(128, 128)
    source = _ChangingDuringRead(data, watched, _touch_forward)
    dataset = build_dataset(source, serve_options(ngff="0.4", levels=1, chunks="64,64"))
    with pytest.raises(SourceChangedError, match="was modified"):
        dataset.tree.read_file("0/0/0")  # checked before the read, changed during it
    assert dataset.levels[0].cached_chunk_pixels((0, 0)) is None  # never cached
    reads = source.reads
    with pytest.raises(SourceChangedError, match="was modified"):
        dataset.tree.read_file("0/1/1")
    assert source.reads == reads  # a change once seen reads nothing more


def test_every_file_of_a_multi_file_ome_tiff_is_watched(tmp_path: Path) -> None:
    case = ome_multi_file(tmp_path)
    companion = tmp_path / "ome_multi_file_part2.tif"
    dataset = open_dataset(case.path, serve_options(chunks="30,40", ngff="0.4", levels=1))
    try:
        assert list(dataset.source.files()) == [str(case.path), str(companion)]
        tree = dataset.tree
        assert tree.read_file("0/0/0/0") == case.expected[0].astype("<u2").tobytes()
        _touch_forward(companion)
        # A plane of the first file: the same image, part of which changed.
        with pytest.raises(SourceChangedError) as error:
            tree.read_file("0/1/0/0")
    finally:
        dataset.close()
    assert f"source {companion} was modified" in str(error.value)


def test_a_change_while_the_source_is_being_opened_shows_at_the_first_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import zarrfs.core.dataset as dataset_module

    source = tmp_path / "source.tif"
    _write(source, _image(1))
    open_source = dataset_module.open_source

    def open_then_change(*args: object, **kwargs: object) -> object:
        opened = open_source(*args, **kwargs)  # type: ignore[arg-type]  # metadata read from the file as it was
        _touch_forward(source)
        return opened

    monkeypatch.setattr(dataset_module, "open_source", open_then_change)
    dataset = open_dataset(source, serve_options(chunks="32,32"))
    try:
        with pytest.raises(SourceChangedError, match="was modified"):
            dataset.tree.read_file("0/0/0")
    finally:
        dataset.close()


def test_with_a_hanging_source_check_open_files_still_read_their_cached_chunks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import zarrfs.core.tree as tree_module

    monkeypatch.setattr(tree_module, "STUCK_CHECK_S", 0.05)
    data = np.arange(128 * 128, dtype=np.uint16).reshape(128, 128)
    dataset = build_dataset(ArraySource(data, "yx"), serve_options(ngff="0.4", levels=1, chunks="64,64"))
    files = dataset.layouts[0].files[0]
    files.read((0, 0), 0, 1)  # made (and checked) before the source stopped answering
    answering = threading.Event()
    # A source whose every check waits, like a stat on a network filesystem that stopped answering, with a
    # re-check due at every read.
    tree = VirtualTree({}, {"0": {"": files}}, guard=lambda: answering.wait(5), recheck_due=lambda: True)
    stuck = threading.Thread(target=tree.read, args=("0/0/0", 0, 1), kwargs={"blocking": False})
    stuck.start()
    time.sleep(0.1)
    try:
        assert stuck.is_alive()
        # Answered at once from the cache, not sent where a time limit applies (and fails after it) ...
        assert tree.read("0/0/0", 0, 1 << 20, blocking=False) == data[:64, :64].astype("<u2").tobytes()
        # ... while lookups, which may open files for chunks not made yet, still are.
        with pytest.raises(WouldBlock):
            tree.stat("0/0/0", blocking=False)
    finally:
        answering.set()
        stuck.join(timeout=5)
    assert not stuck.is_alive()
