"""Repositories in-process (zarrfs.core.repository through zarrfs.open_store and RepositoryTree): naming,
rule files, listings, the shared cache, the pool of open images, liveness and bad input. Oracles are each
format's own reader (repository_cases.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from repository_cases import mixed_tree, write_tiff

import zarrfs
from zarrfs.core.options import ServeOptions
from zarrfs.core.repository import Repository, RepositoryOptions, RepositoryTree
from zarrfs.core.repository import listings as listings_module
from zarrfs.core.repository.naming import assign_names, short_name
from zarrfs.frontends.store import ZarrfsStore


def _tree(root: Path, **options: object) -> RepositoryTree:
    return RepositoryTree(str(root), ServeOptions(), RepositoryOptions(**{"settle_s": 0.0, **options}))


def _level0(store: ZarrfsStore, node: str) -> np.ndarray:
    return zarr.open_group(store, path=node, mode="r")["0"][...]


def _store(tree: RepositoryTree) -> ZarrfsStore:
    """The in-process store over ``tree``; closing it closes the tree."""
    return ZarrfsStore(Repository(tree.root, tree))


async def _names(names: AsyncIterator[str]) -> list[str]:
    return [name async for name in names]


def test_short_names_replace_the_image_extension() -> None:
    assert short_name("a.tif") == "a.ome.zarr"
    assert short_name("b.ome.tiff") == "b.ome.zarr"
    assert short_name("c.nii.gz") == "c.ome.zarr"
    assert short_name("d.zarr") == "d.ome.zarr"
    assert short_name("noext") == "noext.ome.zarr"
    assert short_name(".hidden") == ".hidden.ome.zarr"


def test_colliding_names_follow_the_documented_rule() -> None:
    # a.tif sorts first and keeps a.ome.zarr; a.tiff takes its full name; a directory keeps its name, and
    # an image whose short and full names are both taken gets the first free numbered one.
    served = assign_names(["x.ome.zarr"], {n: n for n in ["a.tiff", "a.tif", "x.tif", "x", "a.tiff.ome"]})
    assert served["a.ome.zarr"] == "a.tif"
    assert served["a.tiff.ome.zarr"] == "a.tiff.ome"  # short name of a.tiff.ome, taken before the losers
    assert served["a.tiff~2.ome.zarr"] == "a.tiff"
    assert served["x.ome.zarr"] == "x.ome.zarr"  # the directory
    assert served["x.tif.ome.zarr"] == "x.tif"
    assert served["x~2.ome.zarr"] == "x"  # "x" + ".ome.zarr" is the directory's name
    assert len(set(served.values())) == len(served)


def test_every_node_of_a_mixed_tree_reads_equal_to_its_source(tmp_path: Path) -> None:
    expected = mixed_tree(tmp_path)
    store = zarrfs.open_store(str(tmp_path), settle=0)
    try:
        for node, read in expected.items():
            np.testing.assert_array_equal(zarr.open_group(store, path=node, mode="r")["0"][...], read(), node)
        top = asyncio.run(_names(store.list_dir("")))
        assert top == ["a.ome.zarr", "a.tiff.ome.zarr", "d.ome.zarr", "sections", "sub"]
    finally:
        store.close()


def test_listing_opens_no_image_and_a_paged_listing_scans_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """100,000 entries in one directory: 50,000 directories (mirrored) and 50,000 empty files (not shown)."""
    big = tmp_path / "big"
    big.mkdir()
    for index in range(50_000):
        (big / f"d{index:05d}").mkdir()
        (big / f"f{index:05d}.tif").touch()
    write_tiff(big / "image.tif", 1)
    scans = []
    real_scan = listings_module.scan_directory
    monkeypatch.setattr(listings_module, "scan_directory", lambda *a: scans.append(a[0]) or real_scan(*a))
    tree = _tree(tmp_path)
    started = time.monotonic()
    names: list[str] = []
    while True:  # as FUSE readdir asks: page by page, from an offset
        page = list(zip(range(1000), tree.listdir("big", len(names)), strict=False))
        if not page:
            break
        names += [name for _, name in page]
    elapsed = time.monotonic() - started
    assert names == sorted([f"d{index:05d}" for index in range(50_000)] + ["image.ome.zarr"])
    assert scans.count(str(big)) == 1
    assert tree.images.opened == 0
    assert elapsed < 30, elapsed  # generous: a rescan per page would take minutes
    assert tree.listing("big").hidden["f00000.tif"] == "empty (0 bytes)"


def test_images_of_one_shape_share_the_cache_without_reading_each_others_chunks(tmp_path: Path) -> None:
    """a.tif and b.tif have the same shape, dtype and chunks: their cache keys differ only by node."""
    first, second = write_tiff(tmp_path / "a.tif", 1), write_tiff(tmp_path / "b.tif", 2)
    tree = _tree(tmp_path)
    store = _store(tree)
    try:
        for _ in range(2):  # the second round from the cache
            np.testing.assert_array_equal(_level0(store, "a.ome.zarr"), first())
            np.testing.assert_array_equal(_level0(store, "b.ome.zarr"), second())
        assert tree.shared.chunks.stats().hits > 0
    finally:
        store.close()


def test_least_recently_used_images_are_closed_and_reopened(tmp_path: Path) -> None:
    oracles = {f"i{index}.ome.zarr": write_tiff(tmp_path / f"i{index}.tif", index) for index in range(6)}
    tree = _tree(tmp_path, max_open=2)
    store = _store(tree)
    try:
        for _ in range(2):
            for node, read in oracles.items():
                np.testing.assert_array_equal(_level0(store, node), read())
                assert tree.images.open_count() <= 2
        assert tree.images.opened == 12 and tree.images.closed == 10
    finally:
        store.close()


def test_a_sequence_rule_makes_one_volume_and_a_bad_rule_says_why(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    planes = [write_tiff(tmp_path / "s" / f"z_{index}.tif", index, (20, 30)) for index in (1, 2, 10)]
    (tmp_path / "s" / "zarrfs-sequence.json").write_text(json.dumps({"pattern": "z_*.tif", "axis": "t"}))
    (tmp_path / "bad").mkdir()
    write_tiff(tmp_path / "bad" / "one.tif", 5)
    (tmp_path / "bad" / "zarrfs-sequence.json").write_text('{"pattern": "*.tif", "axis": "q"}')
    tree = _tree(tmp_path)
    store = _store(tree)
    try:
        assert list(tree.listdir("s")) == ["s.ome.zarr"]  # default name: the directory's
        group = zarr.open_group(store, path="s/s.ome.zarr", mode="r")
        assert [axis["name"] for axis in group.attrs["multiscales"][0]["axes"]] == ["t", "y", "x"]
        np.testing.assert_array_equal(group["0"][...], np.stack([read() for read in planes]))  # natural order
        assert list(tree.listdir("bad")) == ["one.ome.zarr"]
        assert "'axis' must be one of z, t, c" in tree.listing("bad").hidden["zarrfs-sequence.json"]
    finally:
        store.close()


def test_bad_entries_are_not_shown_and_say_why(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "root"
    root.mkdir()
    good = write_tiff(root / "good.tif", 1)
    weird = write_tiff(root / "a b\nc é.tif", 2)  # spaces, a newline, non-ASCII
    (root / "empty.tif").touch()
    (root / "broken").symlink_to(root / "missing.tif")
    (root / "loop").symlink_to(root / "loop")
    (root / "up").symlink_to(root)  # a directory above itself
    write_tiff(tmp_path / "outside.tif", 3)
    (root / "out.tif").symlink_to(tmp_path / "outside.tif")
    (root / "inside.tif").symlink_to(root / "good.tif")
    (root / "bad.tif").write_bytes(b"II*\x00" + b"\xff" * 1000)  # a TIFF header and nothing sensible
    (root / ".zarrfs").mkdir()  # the control directory's name
    tree = _tree(root)
    store = _store(tree)
    try:
        assert list(tree.listdir("")) == [
            "a b\nc é.ome.zarr", "bad.ome.zarr", "good.ome.zarr", "inside.ome.zarr"
        ]  # fmt: skip
        hidden = tree.listing("").hidden
        assert hidden["empty.tif"] == "empty (0 bytes)"
        assert hidden["broken"] == "broken symbolic link"
        assert hidden["loop"] == "symbolic link loop"
        assert hidden["up"] == "symbolic link loop (it leads to a directory above it)"
        assert hidden["out.tif"] == "symbolic link leads out of the served directory (see --follow-symlinks)"
        assert "reserved" in hidden[".zarrfs"]
        np.testing.assert_array_equal(_level0(store, "a b\nc é.ome.zarr"), weird())
        np.testing.assert_array_equal(_level0(store, "inside.ome.zarr"), good())
        caplog.clear()
        with caplog.at_level(logging.ERROR):
            for _ in range(3):
                with pytest.raises(OSError):
                    tree.stat("bad.ome.zarr/.zattrs")
        assert len([r for r in caplog.records if "bad.tif" in r.getMessage()]) == 1  # one line, not three
        np.testing.assert_array_equal(_level0(store, "good.ome.zarr"), good())  # only its own node fails
        stats = json.loads(bytes(tree.read_file(".zarrfs/stats.json")))
        assert stats["errors_by_source"] == {str(root / "bad.tif"): 3}
    finally:
        store.close()
    followed = _tree(root, follow_symlinks=True)
    try:
        assert "out.ome.zarr" in list(followed.listdir(""))
    finally:
        followed.close()


def test_a_directory_that_vanishes_is_gone_and_its_parent_still_lists(tmp_path: Path) -> None:
    (tmp_path / "gone" / "deep").mkdir(parents=True)
    write_tiff(tmp_path / "gone" / "deep" / "x.tif", 1)
    stays = write_tiff(tmp_path / "stays.tif", 2)
    tree = _tree(tmp_path)
    store = _store(tree)
    try:
        assert list(tree.listdir("gone/deep")) == ["x.ome.zarr"]
        for path in ("gone/deep/x.tif", "gone/deep", "gone"):
            target = tmp_path / path
            target.unlink() if target.is_file() else target.rmdir()
        time.sleep(listings_module.RECHECK_S + 0.1)
        assert list(tree.listdir("")) == ["stays.ome.zarr"]
        # Asked for what was there: an I/O error (EIO), not "no such file" (which Zarr reads as zeros).
        with pytest.raises(OSError, match="gone was deleted or replaced"):
            tree.stat("gone/deep/x.ome.zarr/0/0/0")
        with pytest.raises(OSError, match="gone was deleted or replaced"):
            list(tree.listdir("gone/deep"))
        assert tree.stat("elsewhere") is None
        np.testing.assert_array_equal(_level0(store, "stays.ome.zarr"), stays())
    finally:
        store.close()


def test_files_still_being_written_wait_for_settle_and_replaced_files_are_new_images(tmp_path: Path) -> None:
    first = write_tiff(tmp_path / "x.tif", 1)
    time.sleep(1.1)  # settled (its ctime, which no utime can set back, counts too)
    tree = _tree(tmp_path, settle_s=1.0)
    store = _store(tree)
    try:
        before = _level0(store, "x.ome.zarr")
        np.testing.assert_array_equal(before, first())
        write_tiff(tmp_path / "y.tif", 2)
        replacement = tmp_path / "x.new"
        write_tiff(replacement, 3)
        os.replace(replacement, tmp_path / "x.tif")
        time.sleep(listings_module.RECHECK_S + 0.1)
        assert list(tree.listdir("")) == []  # both changed less than a second ago
        assert "still being written" in tree.listing("").hidden["y.tif"]
        time.sleep(1.0)
        assert list(tree.listdir("")) == ["x.ome.zarr", "y.ome.zarr"]
        after = _level0(store, "x.ome.zarr")
        np.testing.assert_array_equal(after, tifffile.imread(tmp_path / "x.tif"))
        assert not np.array_equal(before, after)
        assert tree.images.closed >= 1  # the old image was dropped
    finally:
        store.close()


def test_stats_are_hidden_from_the_root_listing_and_count_what_was_served(tmp_path: Path) -> None:
    read = write_tiff(tmp_path / "x.tif", 1)
    tree = _tree(tmp_path)
    store = _store(tree)
    try:
        assert ".zarrfs" not in list(tree.listdir(""))
        assert list(tree.listdir(".zarrfs")) == ["stats.json"]
        np.testing.assert_array_equal(_level0(store, "x.ome.zarr"), read())
        time.sleep(0.6)  # the document is made again at most every half second
        entry = tree.stat(".zarrfs/stats.json")
        assert entry is not None and entry.size % 4096 == 0
        stats = json.loads(bytes(tree.read(".zarrfs/stats.json", 0, entry.size)))
        assert stats["images"] == {"open": 1, "max_open": 64, "opened": 1, "closed": 0}
        assert stats["chunks_served"] >= 1
        assert stats["cache"]["misses"] >= 1 and stats["cache"]["size_bytes"] > 0
        assert stats["cache"]["capacity_bytes"] > 0
        assert stats["errors_by_source"] == {}
    finally:
        store.close()


def test_a_sequence_file_rewritten_in_place_fails_then_serves_the_new_volume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sequence checks its files itself when it reads them: the volume's chunks made before the change may
    still be served (the old file's bytes, whole), or fail; the rescan that comes at least every RESCAN_S
    serves the new volume."""
    monkeypatch.setattr(listings_module, "RESCAN_S", 1.0)
    (tmp_path / "s").mkdir()
    paths = [tmp_path / "s" / f"z_{index}.tif" for index in range(3)]
    for index, path in enumerate(paths):
        write_tiff(path, index, (20, 30))
    (tmp_path / "s" / "zarrfs-sequence.json").write_text('{"pattern": "z_*.tif", "name": "v"}')
    tree = _tree(tmp_path, settle_s=0.3)
    store = _store(tree)
    try:
        time.sleep(listings_module.MTIME_TRUST_S + 0.1)  # the directory's mtime is trusted from now on
        before = _level0(store, "s/v.ome.zarr")
        with open(paths[1], "r+b") as handle:  # in place: same inode, same size
            tifffile.imwrite(handle, np.full((20, 30), 7, np.uint16))
        with contextlib.suppress(OSError):  # EIO, or the old volume whole (its cached chunks)
            np.testing.assert_array_equal(_level0(store, "s/v.ome.zarr"), before)
        time.sleep(1.0 + 0.3 + listings_module.RECHECK_S)
        after = _level0(store, "s/v.ome.zarr")
        np.testing.assert_array_equal(after[1], np.full((20, 30), 7, np.uint16))
        np.testing.assert_array_equal(after[[0, 2]], before[[0, 2]])
    finally:
        store.close()


def test_listing_a_node_that_cannot_be_opened_in_time_is_an_io_error_not_a_hang(
    tmp_path: Path,
) -> None:
    """A readdir of an image node opens the image: it runs where --timeout applies (an image on a stuck file
    system, or at a URL that stopped answering, must not hold the caller for ever), while the repository's
    own listings keep being answered."""
    import errno
    import threading

    from zarrfs.frontends.fuse_ops import ZarrfsOperations

    write_tiff(tmp_path / "slow.tif", 1)
    tree = _tree(tmp_path)
    released = threading.Event()
    opener = tree.images._opener

    def stuck_open(node: object) -> object:
        released.wait(30)
        return opener(node)

    tree.images._opener = stuck_open
    operations = ZarrfsOperations(tree, mtime_ns=0, request_timeout=0.5)
    try:
        assert [name for name, _, _ in operations.readdir_with_offset("/", 0, 0)] == [
            ".",
            "..",
            "slow.ome.zarr",
        ]
        started = time.monotonic()
        with pytest.raises(OSError) as raised:
            list(operations.readdir_with_offset("/slow.ome.zarr", 0, 0))
        assert raised.value.errno == errno.EIO
        assert time.monotonic() - started < 5
        assert [name for name, _, _ in operations.readdir_with_offset("/", 2, 0)] == ["slow.ome.zarr"]
    finally:
        released.set()
        operations.destroy("/")
        tree.close()
