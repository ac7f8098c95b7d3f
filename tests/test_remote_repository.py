"""Repositories at URLs: an S3 prefix (moto) and an HTTP directory with index pages (nginx ``autoindex on``),
mirrored as a local directory is. Every node equals its local file (tifffile, h5py, nibabel) through
``open_store`` and a real FUSE mount; ``zarrfs info`` lists the nodes and what is not shown; an object
uploaded while mounted appears, a replaced one is served as the new image (never a mix); one listing request
a directory and at most one small range request an object to list; no credential in any output."""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
import tifffile
import zarr
from http_serving import serving
from mounting import mounted, zarrfs
from remote_servers import KEY_ID, SECRET, MotoS3, Nginx, moto_s3, nginx
from repository_cases import age, write_hdf5, write_nifti, write_tiff

import zarrfs as zarrfs_module
from zarrfs.core.dataset import SharedCaches
from zarrfs.core.options import serve_options
from zarrfs.core.repository import repository_options
from zarrfs.core.repository.nodes import ImageNode
from zarrfs.core.repository.remote import RemoteTree
from zarrfs.core.staleness import SourceChangedError
from zarrfs.sources.remote.options import RemoteOptions

BUCKET = "repos"
# New objects show within the remote listing's recheck (3 s) plus the kernel's entry timeout; with margin.
APPEARS_WITHIN_S = 15.0


def write_tree(root: Path) -> dict[str, Callable[[], np.ndarray]]:
    """A repository of TIFFs, an HDF5 file, a gzipped NIfTI, a nested directory and an object no reader
    opens; served node -> its oracle."""
    (root / "nested" / "deeper").mkdir(parents=True)
    expected = {
        "a.ome.zarr": write_tiff(root / "a.tif", 1),
        "two words.ome.zarr": write_tiff(root / "two words.tif", 2, (40, 50)),
        "volume.ome.zarr": write_hdf5(root / "volume.h5", 3),
        "nested/head.ome.zarr": write_nifti(root / "nested" / "head.nii.gz", 4),
        "nested/deeper/c.ome.zarr": write_tiff(root / "nested" / "deeper" / "c.tif", 5),
    }
    (root / "notes.txt").write_text("not an image\n")
    age(root)
    return expected


@dataclass
class Remote:
    """A served copy of the tree: its URL, and the requests the server logged (their paths)."""

    url: str
    requests: Callable[[], list[str]]
    # Puts bytes at a path relative to the URL (uploads, or writes into nginx's directory).
    put: Callable[[str, bytes], None]
    environment: dict[str, str]


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Callable[[], np.ndarray]]]:
    served = tmp_path_factory.mktemp("served")
    (served / "repo").mkdir()
    return served, write_tree(served / "repo")


@pytest.fixture(scope="module")
def http_server(tree: tuple[Path, object], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    with nginx(tree[0], tmp_path_factory.mktemp("nginx"), autoindex=True) as server:
        yield server


@pytest.fixture(scope="module")
def s3_server(tree: tuple[Path, object], tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoS3]:
    with moto_s3(tmp_path_factory.mktemp("moto")) as server:
        server.upload(tree[0], BUCKET)
        yield server


def _s3_put(server: MotoS3) -> Callable[[str, bytes], None]:
    client = server.client()
    return lambda key, data: client.put_object(Bucket=BUCKET, Key=key, Body=data)


@pytest.fixture(params=["http", "s3"])
def remote(
    request: pytest.FixtureRequest,
    tree: tuple[Path, object],
    monkeypatch: pytest.MonkeyPatch,
) -> Remote:
    """The tree at ``<url>/repo/``, served by nginx or moto (the AWS variables set for moto)."""
    if request.param == "http":
        server: Nginx = request.getfixturevalue("http_server")

        def write(relative: str, data: bytes) -> None:
            path = tree[0] / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            staged = path.with_name(path.name + ".part")
            staged.write_bytes(data)
            os.replace(staged, path)

        return Remote(f"{server.url}/", server.requests, write, {})
    s3: MotoS3 = request.getfixturevalue("s3_server")
    environment = {
        "AWS_ACCESS_KEY_ID": KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_ENDPOINT_URL": s3.endpoint,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return Remote(f"s3://{BUCKET}/", s3.requests, _s3_put(s3), environment)


def _paths(requests: list[str]) -> list[str]:
    """The paths requested (nginx's log: ``GET /path range status``; moto's: a quoted request line)."""
    found = []
    for line in requests:
        match = re.search(r'"(?:\S*m)?(GET|HEAD) (\S+)', line) or re.match(r"(GET|HEAD) (\S+)", line)
        if match:
            found.append(f"{match.group(1)} {match.group(2)}")
    return found


def test_open_store_serves_every_node_equal_to_its_file(
    remote: Remote, tree: tuple[Path, dict[str, Callable[[], np.ndarray]]]
) -> None:
    _, expected = tree
    before = len(remote.requests())
    store = zarrfs_module.open_store(remote.url + "repo/", settle=0)
    opening = _paths(remote.requests()[before:])
    first = zarr.open_group(store, path="a.ome.zarr", mode="r")["0"][...]
    np.testing.assert_array_equal(first, expected["a.ome.zarr"]())
    listed = _paths(remote.requests()[before:])[len(opening) :]
    for node, read in expected.items():
        served = zarr.open_group(store, path=node, mode="r")["0"][...]
        oracle = read()
        np.testing.assert_array_equal(served.reshape(oracle.shape), oracle, node)
    # Opening a URL prefix: the Zarr/N5 documents a store would have (4), then one listing.
    assert len(opening) <= 6, opening
    # Listing the root: one listing request, at most one request for each object not opened, and the
    # opened node's (its identity, then its bytes).
    assert (
        sum(path.rstrip("/").endswith(("/repo", "prefix=repo/")) or "prefix=repo" in path for path in listed)
        == 1
    )
    for name in ("two%20words.tif", "volume.h5", "notes.txt"):
        assert sum(path.endswith("/repo/" + name) for path in listed) <= 1, (name, listed)
    print(f"requests to open: {len(opening)}; to list the root and open one node: {len(listed)}")


def test_mount_serves_every_node_and_statistics(
    remote: Remote, tree: tuple[Path, dict[str, Callable[[], np.ndarray]]], tmp_path: Path
) -> None:
    _, expected = tree
    with mounted(remote.url + "repo/", tmp_path / "mnt", "--settle", "0") as mountpoint:  # type: ignore[arg-type]
        assert sorted(os.listdir(mountpoint)) == [
            "a.ome.zarr",
            "nested",
            "two words.ome.zarr",
            "volume.ome.zarr",
        ]
        assert sorted(os.listdir(mountpoint / "nested")) == ["deeper", "head.ome.zarr"]
        for node, read in expected.items():
            served = zarr.open_group(str(mountpoint / node), mode="r")["0"][...]
            oracle = read()
            np.testing.assert_array_equal(served.reshape(oracle.shape), oracle, node)
        stats = json.loads((mountpoint / ".zarrfs" / "stats.json").read_text())
    assert stats["images"]["opened"] == len(expected)
    assert stats["errors_by_source"] == {}
    assert stats["source"] == remote.url + "repo/"


def test_serve_serves_every_node(
    remote: Remote, tree: tuple[Path, dict[str, Callable[[], np.ndarray]]]
) -> None:
    _, expected = tree
    with serving(remote.url + "repo/", "--settle", "0") as server:
        base = f"http://{server.host}:{server.port}"
        for node, read in expected.items():
            served = zarr.open_group(f"{base}/{quote(node)}", mode="r")["0"][...]
            oracle = read()
            np.testing.assert_array_equal(served.reshape(oracle.shape), oracle, node)
        status, _, body = server.request("GET", "/.zarrfs/stats.json")
    assert status == 200 and json.loads(body)["images"]["opened"] == len(expected)


def test_info_lists_nodes_and_what_is_not_shown(remote: Remote) -> None:
    result = zarrfs("info", remote.url + "repo/", "--settle", "0", env=remote.environment)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"repository: {remote.url}repo/"
    for node, source in [
        ("a.ome.zarr", "a.tif: TIFF"),
        ("two words.ome.zarr", "two words.tif: TIFF"),
        ("volume.ome.zarr", "volume.h5: HDF5"),
        ("nested/head.ome.zarr", "nested/head.nii.gz: NIfTI"),
        ("nested/deeper/c.ome.zarr", "nested/deeper/c.tif: TIFF"),
    ]:
        assert any(line.startswith(f"  image      {node} <- {source}") for line in lines), result.stdout
    assert "  not shown  notes.txt: no reader opens it (not an image format zarrfs knows)" in lines
    assert lines[-1] == "5 images (0 cannot be served), 1 entries not shown"


def test_a_prefix_that_cannot_be_listed_is_one_line(http_server: Nginx, s3_server: MotoS3) -> None:
    environment = {
        "AWS_ACCESS_KEY_ID": KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_ENDPOINT_URL": s3_server.endpoint,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    missing = zarrfs("info", f"s3://{BUCKET}/no-such-prefix/", env=environment)
    assert missing.returncode == 1
    assert (
        missing.stderr == f"zarrfs: error: not found: nothing is listed under s3://{BUCKET}/no-such-prefix/\n"
    )
    forbidden = zarrfs("info", f"{http_server.url}/forbidden/")  # a server that answers 403 for it
    assert forbidden.returncode == 1
    assert forbidden.stderr.startswith("zarrfs: error: access denied (HTTP 403 Forbidden): ")
    assert len(forbidden.stderr.splitlines()) == 1


def _wait_for(check: Callable[[], bool], within: float) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < within, f"not within {within} s"
        time.sleep(0.1)
    return time.monotonic() - started


def _tiff_bytes(seed: int, shape: tuple[int, int]) -> tuple[bytes, np.ndarray]:
    pixels = np.random.default_rng(seed).integers(0, 60000, shape).astype("uint16")
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"zarrfs-remote-repository-{os.getpid()}-{seed}.tif"
    tifffile.imwrite(path, pixels, tile=(32, 32), compression="zlib")
    try:
        return path.read_bytes(), pixels
    finally:
        path.unlink()


def test_new_object_appears_and_replaced_object_is_served_new_never_mixed(
    remote: Remote, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    live = f"live-{request.node.callspec.id}-{os.getpid()}/"
    first, old = _tiff_bytes(11, (96, 96))
    remote.put(live + "first.tif", first)
    time.sleep(1.1)  # older than --settle 1 (the default) by the server's clock
    # Nine chunks, of which the first row is read (and cached) before the object is replaced; one image open
    # at a time, so the replaced one is opened again while its old listing may still be kept.
    options = ("--chunks", "32,32", "--max-open", "1")
    with mounted(remote.url + live, tmp_path / "mnt", *options) as mountpoint:  # type: ignore[arg-type]
        node = mountpoint / "first.ome.zarr"
        np.testing.assert_array_equal(zarr.open_group(str(node), mode="r")["0"][:32], old[:32])
        data, new_pixels = _tiff_bytes(12, (64, 80))
        remote.put(live + "second.tif", data)
        appeared = _wait_for(lambda: "second.ome.zarr" in os.listdir(mountpoint), APPEARS_WITHIN_S)
        second = zarr.open_group(str(mountpoint / "second.ome.zarr"), mode="r")["0"][...]
        np.testing.assert_array_equal(second, new_pixels)
        # Replaced: another image of the same shape under the same name. Every whole read is the old image
        # or the new one (or fails), never the old image's cached chunks beside the new one's.
        replacement, replaced_pixels = _tiff_bytes(13, (96, 96))
        remote.put(live + "first.tif", replacement)
        started = time.monotonic()
        served = old
        while not np.array_equal(served, replaced_pixels):
            assert time.monotonic() - started < APPEARS_WITHIN_S, "the replaced object is not served"
            time.sleep(0.1)
            with contextlib.suppress(OSError, KeyError, ValueError):
                served = zarr.open_group(str(node), mode="r")["0"][...]
                assert np.array_equal(served, old) or np.array_equal(served, replaced_pixels)
    print(f"new object visible after {appeared:.2f} s")


def test_a_node_listed_before_its_object_was_replaced_is_not_opened(
    http_server: Nginx, tree: tuple[Path, object]
) -> None:
    """A node's image opened after its object was replaced (its listing still kept) would serve the new
    bytes under the old node's identity (and, over HTTP, its ETags): it fails instead, and says why."""
    directory = tree[0] / "guard"
    directory.mkdir()
    write_tiff(directory / "image.tif", 21)
    age(directory)
    access = RemoteTree(f"{http_server.url}/guard/", RemoteOptions())
    listing = access.scan(access.root, repository_options(settle=0), None)
    node = listing.children["image.ome.zarr"]
    assert isinstance(node, ImageNode)
    write_tiff(directory / "new.tif", 22, (60, 60))
    os.replace(directory / "new.tif", directory / "image.tif")
    options = serve_options()
    with pytest.raises(SourceChangedError, match=r"image\.tif was replaced since it was listed"):
        access.open(node, options, SharedCaches.within(options.cache_bytes, 1))
    assert access.changed(node)


def test_credentials_never_shown(
    s3_server: MotoS3,
    http_server: Nginx,
    tree: tuple[Path, object],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    keys = ("--storage-option", f"key={KEY_ID}", "--storage-option", f"secret={SECRET}")
    password = "pa55word-never-shown"
    http_url = f"http://someone:{password}@{http_server.url.removeprefix('http://')}/repo/"
    outputs = []
    for number, (url, options) in enumerate([(f"s3://{BUCKET}/repo/", keys), (http_url, ())]):
        mountpoint = tmp_path / f"mnt{number}"
        with mounted(url, mountpoint, "--settle", "0", "--debug", *options) as live:  # type: ignore[arg-type]
            with open("/proc/self/mountinfo") as mounts:
                outputs.append(next(line for line in mounts if f" {live} " in line))
            zarr.open_group(str(live / "a.ome.zarr"), mode="r")["0"][...]
            outputs.append((live / ".zarrfs" / "stats.json").read_text())
            with pytest.raises(OSError):  # a failing node's message, too
                (live / "nested" / "missing.ome.zarr").stat()
        outputs.append((tmp_path / "zarrfs.log").read_text())
        info = zarrfs("info", url, "--settle", "0", *options)
        assert info.returncode == 0, info.stderr
        outputs += [info.stdout, info.stderr]
    text = "\n".join(outputs)
    assert "a.ome.zarr" in text
    for secret in (KEY_ID, SECRET, password, "someone"):
        assert secret not in text
