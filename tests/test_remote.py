"""Sources at URLs, in-process (open_store, open_source) and through ``zarrfs info``: an nginx and a moto S3
server started here on 127.0.0.1 serve files written with tifffile, h5py and nibabel; values must equal those
libraries' reading of the local files, opens stay within a request budget counted in the servers' own logs,
and no credential appears in any output."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr
from http_serving import serving
from mounting import zarrfs
from remote_cases import oracle, write_cog
from remote_servers import BUCKET, KEY_ID, SECRET, MotoS3, Nginx, nginx

from zarrfs import open_store
from zarrfs.errors import SourceError
from zarrfs.sources import open_source
from zarrfs.sources.remote.options import RemoteOptions, parse_storage_options
from zarrfs.sources.remote.urls import redact

pytest_plugins = ["remote_fixtures"]  # the servers and the cases they serve

# Requests an open may make (HEAD, then the first block with its read-ahead, then IFDs or HDF5 object
# headers beyond it), counted in the server's log. Measured: 2 for the small files, 6 for the OME-TIFF with
# SubIFDs, 4 for the COG layout, 3 for HDF5.
OPEN_BUDGET = {
    "tiled.tif": 2,
    "striped.tif": 2,
    "pyramid.ome.tif": 6,
    "cog.tif": 4,
    "volume.h5": 3,
    "volume.nii": 2,
    "volume.nii.gz": 2,
}


def _level0(store: zarr.abc.store.Store) -> np.ndarray:
    group = zarr.open_group(store, mode="r")
    return np.asarray(group["0"][...])


@pytest.mark.parametrize("name", sorted(OPEN_BUDGET))
def test_http_values_and_requests_to_open(name: str, cases: dict[str, Path], http: Nginx) -> None:
    before = len(http.requests())
    source = open_source(f"{http.url}/{name}")
    try:
        opened = http.count(name) - sum(
            1 for line in http.requests()[:before] if line.split()[1] == "/" + name
        )
        assert opened <= OPEN_BUDGET[name], http.requests()[before:]
        assert any(" 206" in line for line in http.requests()[before:])  # byte ranges, not whole downloads
    finally:
        source.close()
    expected = oracle(cases[name])
    served = _level0(open_store(f"{http.url}/{name}"))
    np.testing.assert_array_equal(served.reshape(expected.shape), expected)


@pytest.mark.parametrize("name", ["cog.tif", "pyramid.ome.tif", "volume.h5", "volume.nii.gz"])
def test_s3_values_and_requests_to_open(name: str, cases: dict[str, Path], aws: MotoS3) -> None:
    before = aws.count(f"{BUCKET}/{name}")
    source = open_source(f"s3://{BUCKET}/{name}")
    try:
        assert aws.count(f"{BUCKET}/{name}") - before <= OPEN_BUDGET[name]
    finally:
        source.close()
    expected = oracle(cases[name])
    served = _level0(open_store(f"s3://{BUCKET}/{name}"))
    np.testing.assert_array_equal(served.reshape(expected.shape), expected)


# Requests to open a store at a URL: the probe of the URL (nginx: a redirect to the directory, then 403),
# each metadata document once (and the names tried before it), then tensorstore's own read of each array's.
STORE_OPEN_BUDGET = {"ome_zarr_04": 18, "v3_zstd_named": 4, "n5_dataset": 7}


@pytest.mark.parametrize("name", sorted(STORE_OPEN_BUDGET))
def test_zarr_and_n5_stores_at_urls(
    name: str, stores: dict[str, tuple[str, np.ndarray]], http: Nginx, aws: MotoS3
) -> None:
    """Through tensorstore's http and s3 drivers; level 0 equal to zarr-python's or tensorstore's reading of
    the local store."""
    relative, expected = stores[name]
    before = len(http.requests())
    source = open_source(f"{http.url}/{relative}")
    try:
        assert len(http.requests()) - before <= STORE_OPEN_BUDGET[name], http.requests()[before:]
        assert all(url.startswith(http.url) for url in source.files())  # the documents, watched
    finally:
        source.close()
    for url in (f"{http.url}/{relative}", f"s3://{BUCKET}/{relative}"):
        served = _level0(open_store(url))
        np.testing.assert_array_equal(served, expected)


def test_tiles_of_one_chunk_come_in_one_merged_request(http: Nginx) -> None:
    """A region of 4x4 tiles (adjacent in the file, row by row) is fetched in concurrent merged ranges, not
    one request per tile."""
    source = open_source(f"{http.url}/cog.tif", block_cache_bytes=64 * 2**20)
    try:
        before = len(http.requests())
        source.read_region(0, (slice(2048, 4096), slice(2048, 4096)))
        gets = [line for line in http.requests()[before:] if line.startswith("GET")]
        assert 1 <= len(gets) <= 4, gets  # 4 tile rows, each one run of 4 tiles (16 tiles without merging)
    finally:
        source.close()


def test_missing_and_forbidden_objects_are_one_line_errors(http: Nginx, aws: MotoS3) -> None:
    for url, words in (
        (f"{http.url}/nothing-here.tif", "not found (HTTP 404"),
        (f"{http.url}/forbidden/tiled.tif", "access denied (HTTP 403"),
        (f"s3://{BUCKET}/nothing-here.tif", "not found (S3"),
    ):
        result = zarrfs("info", url)
        assert result.returncode == 1
        assert result.stderr.startswith(f"zarrfs: error: {words}"), result.stderr
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_credentials_never_appear(http: Nginx, s3: MotoS3) -> None:
    token = "tok3n-that-must-stay-hidden"
    password = "pa55word-hidden"
    url = f"http://reader:{password}@{http.url.removeprefix('http://')}/tiled.tif?token={token}"
    outputs = []
    info = zarrfs("info", url)
    assert info.returncode == 0, info.stderr
    assert "tiled.tif" in info.stdout
    outputs += [info.stdout, info.stderr]
    missing = zarrfs("info", url.replace("tiled.tif", "missing.tif"))
    assert missing.returncode == 1
    outputs += [missing.stdout, missing.stderr]
    # S3 credentials given as storage options, and a wrong endpoint so that the error path runs too.
    options = ["--storage-option", f"key={KEY_ID}", "--storage-option", f"secret={SECRET}"]
    for endpoint in (s3.endpoint, "http://127.0.0.1:9"):
        result = zarrfs("info", f"s3://{BUCKET}/tiled.tif", *options, env={"AWS_ENDPOINT_URL": endpoint})
        outputs += [result.stdout, result.stderr]
    assert "zarrfs: error: cannot open s3://images/tiled.tif" in outputs[-1]
    text = "\n".join(outputs)
    for secret in (token, password, KEY_ID, SECRET):
        assert secret not in text


def test_changed_object_fails_and_never_mixes(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Chunks read after the object changed fail (the pinned range is refused), and keep failing; the chunk
    read before holds the old object's pixels only."""
    root = tmp_path / "served"
    root.mkdir()
    expected = write_cog(root / "image.tif")
    with nginx(root, tmp_path_factory.mktemp("nginx-change")) as server:
        store = open_store(f"{server.url}/image.tif", cache_size="16MiB")
        try:
            array = zarr.open_group(store, mode="r")["0"]
            np.testing.assert_array_equal(array[:512, :512], expected[:512, :512])
            changed = root / "changed.tif"
            write_cog(changed)
            data = bytearray(changed.read_bytes())
            data[-1] ^= 0xFF  # same size, other bytes, and a later mtime: a new ETag
            changed.write_bytes(bytes(data))
            os.utime(changed, ns=(os.stat(root / "image.tif").st_mtime_ns + 10**9,) * 2)
            os.replace(changed, root / "image.tif")
            with pytest.raises(OSError):
                array[-512:, -512:]  # tiles never fetched before the change
            with pytest.raises(OSError):
                array[:512, :512]  # once seen, the change fails every chunk, cached ones too
        finally:
            store.dataset.close()


def test_changed_object_is_a_bad_gateway_over_http(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """``zarrfs serve`` of a URL: a chunk whose object changed is 502 (the upstream's fault), not 500."""
    root = tmp_path / "served"
    root.mkdir()
    write_cog(root / "image.tif")
    with (
        nginx(root, tmp_path_factory.mktemp("nginx-502")) as server,
        serving(f"{server.url}/image.tif") as http,
    ):
        status, _, body = http.request("GET", "/0/.zarray")
        assert status == 200
        array = json.loads(body)
        grid = [math.ceil(size / chunk) for size, chunk in zip(array["shape"], array["chunks"], strict=True)]
        last = "/0/" + array.get("dimension_separator", ".").join(str(count - 1) for count in grid)
        data = bytearray((root / "image.tif").read_bytes())
        data[-1] ^= 0xFF
        (root / "changed.tif").write_bytes(bytes(data))
        os.utime(root / "changed.tif", ns=(os.stat(root / "image.tif").st_mtime_ns + 10**9,) * 2)
        os.replace(root / "changed.tif", root / "image.tif")
        status, _, body = http.request("GET", last)
        assert status == 502, body
        assert "cannot serve" in body.decode() and "changed (HTTP 412)" in body.decode()


def test_object_source_paths_are_urls_as_shown() -> None:
    assert (
        redact("https://user:pw@host:8443/a/b.tif?X-Amz-Signature=abc#frag")
        == "https://***@host:8443/a/b.tif?***"
    )
    assert redact("s3://bucket/key.tif") == "s3://bucket/key.tif"
    assert parse_storage_options(["anon=true", "endpoint_url=http://x:1", "n=3"]) == (
        ("anon", True),
        ("endpoint_url", "http://x:1"),
        ("n", 3),
    )
    assert "secret" not in repr(RemoteOptions(storage=(("key", "secret"),)))


def test_remote_options_refused_for_local_sources(cases: dict[str, Path]) -> None:
    with pytest.raises(SourceError, match="apply to URL sources only"):
        open_store(cases["tiled.tif"], anon=True)


def test_nginx_is_installed() -> None:
    """The servers these tests start exist (``make test`` installs nginx-light and moto)."""
    assert shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
