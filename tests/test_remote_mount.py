"""Sources at URLs through a real FUSE mount: values equal the local files' (read with tifffile, h5py,
nibabel), a changed object gives EIO for its chunks, and no credential reaches the mount's name, its log or
the command's output."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest
import zarr
from mounting import mounted
from remote_cases import oracle, write_cog
from remote_servers import BUCKET, KEY_ID, SECRET, MotoS3, Nginx, nginx

pytest_plugins = ["remote_fixtures"]  # the servers and the cases they serve


def _level0(mountpoint: Path) -> np.ndarray:
    return np.asarray(zarr.open_group(str(mountpoint), mode="r")["0"][...])


@pytest.mark.parametrize("name", ["tiled.tif", "pyramid.ome.tif", "volume.h5", "volume.nii.gz"])
def test_http_mount_values(name: str, cases: dict[str, Path], http: Nginx, tmp_path: Path) -> None:
    with mounted(f"{http.url}/{name}", tmp_path / "mnt") as mountpoint:  # type: ignore[arg-type]
        served = _level0(mountpoint)
    expected = oracle(cases[name])
    np.testing.assert_array_equal(served.reshape(expected.shape), expected)


def test_ome_zarr_at_a_url_mounts(
    stores: dict[str, tuple[str, np.ndarray]], http: Nginx, tmp_path: Path
) -> None:
    relative, expected = stores["ome_zarr_04"]
    with mounted(f"{http.url}/{relative}", tmp_path / "mnt") as mountpoint:  # type: ignore[arg-type]
        np.testing.assert_array_equal(_level0(mountpoint), expected)


def test_s3_mount_values_without_showing_credentials(
    cases: dict[str, Path], s3: MotoS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    options = ("--storage-option", f"key={KEY_ID}", "--storage-option", f"secret={SECRET}", "--debug")
    mountpoint = tmp_path / "mnt"
    with mounted(f"s3://{BUCKET}/cog.tif", mountpoint, *options) as live:  # type: ignore[arg-type]
        with open("/proc/self/mountinfo") as mounts:
            entry = next(line for line in mounts if f" {live} " in line)
        assert "zarrfs:s3://images/cog.tif" in entry
        served = _level0(live)
    np.testing.assert_array_equal(served, oracle(cases["cog.tif"]))
    log = (tmp_path / "zarrfs.log").read_text()
    assert "s3://images/cog.tif" in log  # the log names the source (--debug: every request logged)
    for secret in (KEY_ID, SECRET):
        assert secret not in entry and secret not in log


def test_http_credentials_not_in_mount_name_or_log(http: Nginx, tmp_path: Path) -> None:
    token = "signature-that-must-stay-hidden"
    url = f"http://user:pa55word-hidden@{http.url.removeprefix('http://')}/volume.nii?sig={token}"
    with mounted(url, tmp_path / "mnt", "--debug") as live:  # type: ignore[arg-type]
        with open("/proc/self/mountinfo") as mounts:
            entry = next(line for line in mounts if f" {live} " in line)
        _level0(live)
    log = (tmp_path / "zarrfs.log").read_text()
    assert "volume.nii" in entry and "volume.nii" in log
    for secret in (token, "pa55word-hidden"):
        assert secret not in entry and secret not in log


def test_changed_object_gives_eio(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    root = tmp_path / "served"
    root.mkdir()
    expected = write_cog(root / "image.tif")
    with (
        nginx(root, tmp_path_factory.mktemp("nginx-change")) as server,
        mounted(f"{server.url}/image.tif", tmp_path / "mnt", "--cache-size", "16MiB") as live,  # type: ignore[arg-type]
    ):
        array = zarr.open_group(str(live), mode="r")["0"]
        np.testing.assert_array_equal(array[:512, :512], expected[:512, :512])
        data = bytearray((root / "image.tif").read_bytes())
        data[-1] ^= 0xFF
        changed = root / "changed.tif"
        changed.write_bytes(bytes(data))
        os.utime(changed, ns=(os.stat(root / "image.tif").st_mtime_ns + 10**9,) * 2)
        os.replace(changed, root / "image.tif")
        # The last chunk's tiles were never fetched: its file read is refused, as EIO.
        chunks = sorted(path for path in (live / "0").rglob("*") if path.is_file() and path.name != ".zarray")
        with pytest.raises(OSError) as raised:
            chunks[-1].read_bytes()
        assert raised.value.errno == errno.EIO
    log = (tmp_path / "zarrfs.log").read_text()
    assert "changed (HTTP 412) since it was opened" in log
