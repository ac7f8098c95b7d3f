"""``--disk-cache`` end to end: a COG at an http:// URL (nginx behind the counting proxy) mounted twice with
the same directory reads its values the second time with no range request; after the object is rewritten, a
new mount reads the new values (no block of the old object). Oracle: tifffile reading the served file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from mounting import mounted, zarrfs
from proxies import FaultProxy
from remote_cases import write_cog
from remote_servers import nginx

IMAGE = "image.tif"


def level0(mountpoint: Path) -> np.ndarray:
    return np.asarray(zarr.open_group(str(mountpoint), mode="r")["0"][...])


def read_through_mount(url: str, mountpoint: Path, disk: Path) -> np.ndarray:
    with mounted(url, mountpoint, "--disk-cache", str(disk), "--disk-cache-size", "1GiB") as live:  # type: ignore[arg-type]
        return level0(live)


def test_a_second_mount_reads_from_the_disk_cache_and_a_changed_object_is_read_anew(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path / "served"
    root.mkdir()
    expected = write_cog(root / IMAGE)
    disk = tmp_path / "blocks"
    with nginx(root, tmp_path_factory.mktemp("nginx-disk")) as server, FaultProxy(server.url) as proxy:
        url = f"{proxy.url}/{IMAGE}"
        cold = read_through_mount(url, tmp_path / "cold", disk)
        np.testing.assert_array_equal(cold.reshape(expected.shape), expected)
        cold_gets = proxy.count("GET", f"/{IMAGE}")
        assert cold_gets >= 2
        assert any(disk.rglob("*.blk"))

        proxy.clear()
        warm = read_through_mount(url, tmp_path / "warm", disk)
        np.testing.assert_array_equal(warm.reshape(expected.shape), expected)
        warm_gets = proxy.count("GET", f"/{IMAGE}")
        assert warm_gets == 0  # every block from the disk (the open's HEAD tells its ETag)
        assert proxy.count("HEAD", f"/{IMAGE}") >= 1

        # The object is rewritten (other pixels, a later time: a new ETag): no old block may be served.
        changed = root / "changed.tif"
        tifffile.imwrite(changed, expected[::-1], tile=(512, 512), compression="zlib")
        os.utime(changed, ns=(os.stat(root / IMAGE).st_mtime_ns + 10**9,) * 2)
        os.replace(changed, root / IMAGE)
        proxy.clear()
        new = read_through_mount(url, tmp_path / "new", disk)
        np.testing.assert_array_equal(new.reshape(expected.shape), tifffile.imread(root / IMAGE))
        assert proxy.count("GET", f"/{IMAGE}") >= 2
    print(f"GETs to read {IMAGE} ({expected.nbytes >> 20} MiB): cold {cold_gets}, disk-cached {warm_gets}")


def test_disk_cache_options_are_checked_at_start(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = zarrfs("info", "http://127.0.0.1:9/x.tif", "--disk-cache", str(blocker))
    assert result.returncode == 1
    assert result.stderr == f"zarrfs: error: --disk-cache {blocker}: not a directory\n"
    result = zarrfs("info", "http://127.0.0.1:9/x.tif", "--disk-cache-size", "1GiB")
    assert result.stderr == "zarrfs: error: --disk-cache-size needs --disk-cache DIR\n"
    result = zarrfs(
        "info", "http://127.0.0.1:9/x.tif", "--disk-cache", str(tmp_path), "--disk-cache-size", "1KiB"
    )
    assert result.returncode == 1
    assert "zarrfs: error: invalid size '1KiB' for --disk-cache-size: it must be at least" in result.stderr
