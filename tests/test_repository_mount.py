"""Repositories through a real FUSE mount and a real ``zarrfs serve``: every node equals its source (each
format's own reader), files that come, go and are rewritten while mounted, many images through few open
ones, bad entries, statistics."""

from __future__ import annotations

import concurrent.futures
import errno
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from http_serving import serving
from mounting import mounted, require_root, require_tools
from repository_cases import mixed_tree, write_tiff

LIVE_WITHIN_S = 2.0


def _level0(node: Path) -> np.ndarray:
    return zarr.open_group(str(node), mode="r")["0"][...]


def _wait_for(check: object, within: float) -> float:
    """Seconds until ``check()`` is true; fails after ``within``."""
    started = time.monotonic()
    while not check():  # type: ignore[operator]
        assert time.monotonic() - started < within, f"not within {within} s"
        time.sleep(0.05)
    return time.monotonic() - started


def test_every_node_of_a_mixed_tree_reads_equal_through_a_mount(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    expected = mixed_tree(source)
    with mounted(source, tmp_path / "mnt", "--settle", "0") as mountpoint:
        assert sorted(os.listdir(mountpoint)) == [
            "a.ome.zarr",
            "a.tiff.ome.zarr",
            "d.ome.zarr",
            "sections",
            "sub",
        ]
        for node, read in expected.items():
            np.testing.assert_array_equal(_level0(mountpoint / node), read(), node)
        stats = json.loads((mountpoint / ".zarrfs" / "stats.json").read_text())
        assert stats["images"]["opened"] == len(expected)
        assert stats["chunks_served"] >= len(expected)
        assert stats["errors_by_source"] == {}


def test_files_added_and_deleted_while_mounted_show_within_two_seconds(tmp_path: Path) -> None:
    source = tmp_path / "source"
    (source / "sub").mkdir(parents=True)
    write_tiff(source / "first.tif", 1)
    with mounted(source, tmp_path / "mnt", "--settle", "0") as mountpoint:
        assert os.listdir(mountpoint / "sub") == []
        assert not (mountpoint / "sub" / "new.ome.zarr").exists()  # a negative lookup the kernel may keep
        written = tmp_path / "new.tif"
        expected = write_tiff(written, 2)()
        os.replace(written, source / "sub" / "new.tif")  # appears whole
        node = mountpoint / "sub" / "new.ome.zarr"
        seconds = _wait_for(lambda: os.listdir(node.parent) == [node.name] and node.exists(), LIVE_WITHIN_S)
        np.testing.assert_array_equal(_level0(node), expected)
        assert (mountpoint / "sub" / "new.ome.zarr" / ".zattrs").exists()
        (source / "first.tif").unlink()
        _wait_for(lambda: "first.ome.zarr" not in os.listdir(mountpoint), LIVE_WITHIN_S)
        # A client that still reads it gets an I/O error, not "no such file" (which Zarr reads as zeros).
        with pytest.raises(OSError) as raised:
            (mountpoint / "first.ome.zarr" / "0" / "0" / "0").read_bytes()
        assert raised.value.errno == errno.EIO
        assert seconds < LIVE_WITHIN_S


def test_a_file_rewritten_in_place_never_yields_mixed_chunks(tmp_path: Path) -> None:
    """Readers go on reading every chunk while the file is rewritten in place several times: each chunk is
    the old image's or the new one's whole, or an I/O error; after the last rewrite, the new image."""
    source = tmp_path / "source"
    source.mkdir()
    path = source / "x.tif"
    versions = [
        np.full((128, 128), value, np.uint16) + np.arange(128, dtype=np.uint16) for value in (100, 200, 300)
    ]
    tifffile.imwrite(path, versions[0], tile=(64, 64))
    tile = 64
    with mounted(source, tmp_path / "mnt", "--settle", "0.3", "--chunks", "64,64") as mountpoint:
        node = mountpoint / "x.ome.zarr"
        _wait_for(lambda: node.exists(), 5)
        seen: list[str] = []

        def read_chunks(stop: float) -> None:
            while time.monotonic() < stop:
                try:
                    array = zarr.open_array(str(node / "0"), mode="r")
                    for i in range(2):
                        for j in range(2):
                            chunk = array[i * tile : (i + 1) * tile, j * tile : (j + 1) * tile]
                            matches = [
                                np.array_equal(chunk, v[i * tile : (i + 1) * tile, j * tile : (j + 1) * tile])
                                for v in versions
                            ]
                            seen.append("whole" if any(matches) else "MIXED")
                except Exception as error:  # EIO, or the node missing while the new file settles
                    seen.append(type(error).__name__)

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            readers = [pool.submit(read_chunks, time.monotonic() + 4) for _ in range(4)]
            for version in versions[1:]:
                time.sleep(1)
                with open(path, "r+b") as handle:  # in place: same inode
                    handle.seek(0)
                    tifffile.imwrite(handle, version, tile=(64, 64))
                    handle.truncate()
            for reader in readers:
                reader.result()
        assert "MIXED" not in seen
        assert seen.count("whole") > 10
        time.sleep(1)
        np.testing.assert_array_equal(_level0(node), versions[-1])


def test_many_images_through_four_open_ones_read_byte_exact_from_eight_threads(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    oracles = {
        f"i{index:02d}.ome.zarr": write_tiff(source / f"i{index:02d}.tif", index) for index in range(50)
    }
    expected = {node: read() for node, read in oracles.items()}
    with mounted(source, tmp_path / "mnt", "--settle", "0", "--max-open", "4") as mountpoint:

        def check(node: str) -> bool:
            return np.array_equal(_level0(mountpoint / node), expected[node])

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            assert all(pool.map(check, [*expected, *reversed(expected)]))
        stats = json.loads((mountpoint / ".zarrfs" / "stats.json").read_text())
        assert stats["images"]["open"] <= 4 + 8  # at most one more for each reader holding one
        assert stats["images"]["closed"] >= 50 - 4


def test_bad_entries_fail_only_themselves_through_a_mount(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    good = write_tiff(source / "good.tif", 1)
    weird = write_tiff(source / "a b\nc é.tif", 2)
    (source / "empty.tif").touch()
    (source / "broken").symlink_to(source / "missing")
    (source / "loop").symlink_to(source / "loop")
    (source / "up").symlink_to(source)
    (source / "out").symlink_to("/etc")
    (source / "bad.tif").write_bytes(b"II*\x00" + b"\xff" * 1000)
    with mounted(source, tmp_path / "mnt", "--settle", "0") as mountpoint:
        assert sorted(os.listdir(mountpoint)) == ["a b\nc é.ome.zarr", "bad.ome.zarr", "good.ome.zarr"]
        for _ in range(3):
            with pytest.raises(OSError) as raised:
                (mountpoint / "bad.ome.zarr" / ".zattrs").read_bytes()
            assert raised.value.errno == errno.EIO
        np.testing.assert_array_equal(_level0(mountpoint / "good.ome.zarr"), good())
        np.testing.assert_array_equal(_level0(mountpoint / "a b\nc é.ome.zarr"), weird())
    log = (tmp_path / "zarrfs.log").read_text()
    assert len([line for line in log.splitlines() if "bad.tif cannot be served" in line]) == 1


def test_info_lists_images_and_the_entries_not_shown_with_why(tmp_path: Path) -> None:
    write_tiff(tmp_path / "x.tif", 1)
    (tmp_path / "notes.txt").write_text("text\n")
    (tmp_path / "bad.tif").write_bytes(b"II*\x00" + b"\xff" * 100)
    result = subprocess.run(
        [sys.executable, "-m", "zarrfs", "info", str(tmp_path), "--settle", "0", "--check"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "image      x.ome.zarr <- x.tif: TIFF yx 70x90 uint16" in result.stdout
    assert "not shown  notes.txt: no reader opens it" in result.stdout
    assert "image      bad.ome.zarr <- bad.tif: cannot be served: not a valid TIFF file" in result.stdout
    assert result.stderr == ""  # said once, in the report


def test_unreadable_entries_are_listed_as_such_for_their_user(shared_dir: Path) -> None:
    """As an unprivileged user (root reads everything): a file and a directory without read permission."""
    require_root("to drop privileges")
    require_tools("setpriv")
    write_tiff(shared_dir / "x.tif", 1)
    write_tiff(shared_dir / "secret.tif", 2)
    (shared_dir / "secret.tif").chmod(0)
    (shared_dir / "closed").mkdir(mode=0)
    for path in shared_dir.iterdir():
        if path.name == "x.tif":
            path.chmod(0o644)
    result = subprocess.run(
        [str(shutil.which("setpriv")), "--reuid=65534", "--regid=65534", "--clear-groups",
         sys.executable, "-m", "zarrfs", "info", str(shared_dir), "--settle", "0"],
        capture_output=True, text=True, check=False, env={**os.environ, "HOME": "/tmp"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "image      x.ome.zarr <- x.tif" in result.stdout
    assert "not shown  secret.tif: no permission to read source" in result.stdout
    assert "not shown  closed: no permission to list this directory" in result.stdout


def test_serve_over_http_reads_nodes_and_etags_change_with_the_file(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    expected = mixed_tree(source)
    with serving(source, "--settle", "0") as server:
        base = f"http://{server.host}:{server.port}"
        for node in ("a.ome.zarr", "sub/b.ome.zarr"):
            np.testing.assert_array_equal(
                zarr.open_group(f"{base}/{node}", mode="r")["0"][...], expected[node]()
            )
        status, headers, _ = server.request("GET", "/a.ome.zarr/0/0/0")
        assert status == 200
        status, _, body = server.request("GET", "/.zarrfs/stats.json")
        assert status == 200 and json.loads(body)["chunks_served"] >= 1
        replacement = tmp_path / "a.new.tif"
        new = write_tiff(replacement, 7)()
        os.replace(replacement, source / "a.tif")
        time.sleep(1)
        status, after, _ = server.request("GET", "/a.ome.zarr/0/0/0")
        assert status == 200 and after["etag"] != headers["etag"]
        np.testing.assert_array_equal(zarr.open_group(f"{base}/a.ome.zarr", mode="r")["0"][...], new)


def test_repository_options_out_of_range_are_one_line_errors(tmp_path: Path) -> None:
    for option, message in (("--max-open=0", "--max-open must be 1 or more, not 0"),
                            ("--settle=-1", "--settle must be a number of seconds from 0 to 86400 (one day), "
                                            "not -1.0")):  # fmt: skip
        result = subprocess.run(
            [sys.executable, "-m", "zarrfs", "info", str(tmp_path), option],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert result.returncode == 1
        assert result.stderr.strip().splitlines() == [f"zarrfs: error: {message}"]
