"""Measure file sequences through a real mount: mount time of many small files, a full read of a compressed
sequence through the mount (tensorstore) against tifffile.imread of the files, and the daemon's RSS.

    python scripts/bench_sequence.py [DIR] [--files 2000,7404] [--planes 100]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile


def zarrfs(*args: object) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "zarrfs", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, check=True)


def daemon_rss_mib(mountpoint: Path) -> float:
    """RSS of the daemon serving ``mountpoint`` (the process whose command line names it)."""
    for entry in Path("/proc").iterdir():
        try:
            arguments = (entry / "cmdline").read_bytes().split(b"\0")
            if b"mount" in arguments and os.fsencode(mountpoint) in arguments:
                for line in (entry / "status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            continue
    raise RuntimeError(f"no daemon found for {mountpoint}")


def mount_time(directory: Path, count: int) -> float:
    files = directory / f"small{count}"
    files.mkdir(exist_ok=True)
    for n in range(count):
        path = files / f"s_{n}.tif"
        if not path.exists():
            tifffile.imwrite(path, np.full((64, 64), n % 65536, np.uint16))
    mountpoint = directory / f"mnt{count}"
    mountpoint.mkdir(exist_ok=True)
    started = time.perf_counter()
    zarrfs("mount", files / "s_*.tif", mountpoint, "--log-file", directory / f"small{count}.log")
    took = time.perf_counter() - started
    zarrfs("unmount", mountpoint)
    return took


def full_read(directory: Path, planes: int) -> None:
    import tensorstore as ts

    files = directory / f"big{planes}"
    files.mkdir(exist_ok=True)
    rng = np.random.default_rng(1)
    smooth = (np.add.outer(np.arange(1024), np.arange(1024)) % 4096).astype(np.uint16)
    paths = []
    for n in range(planes):
        path = files / f"b_{n}.tif"
        if not path.exists():
            data = smooth + rng.integers(0, 64, smooth.shape, dtype=np.uint16)
            tifffile.imwrite(path, data, tile=(256, 256), compression="zlib")
        paths.append(path)
    for path in paths:  # both readers start from the page cache
        path.read_bytes()
    started = time.perf_counter()
    reference = np.stack([tifffile.imread(path) for path in paths])
    tifffile_s = time.perf_counter() - started
    mountpoint = directory / "mntbig"
    mountpoint.mkdir(exist_ok=True)
    zarrfs("mount", files / "b_*.tif", mountpoint, "--log-file", directory / "big.log")
    try:
        spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": f"{mountpoint}/0"}}
        started = time.perf_counter()
        served = ts.open(spec).result().read().result()
        mount_s = time.perf_counter() - started
        rss = daemon_rss_mib(mountpoint)
    finally:
        zarrfs("unmount", mountpoint)
    assert np.array_equal(served, reference)
    size = reference.nbytes / 2**20
    print(
        f"full read of {planes} deflate files ({size:.0f} MiB): tifffile.imread {tifffile_s:.2f} s, "
        f"mount + tensorstore {mount_s:.2f} s, ratio {tifffile_s / mount_s:.2f}x; daemon RSS {rss:.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("directory", nargs="?", default=None)
    parser.add_argument("--files", default="2000,7404")
    parser.add_argument("--planes", type=int, default=100)
    arguments = parser.parse_args()
    directory = Path(arguments.directory or tempfile.mkdtemp(prefix="zarrfs-sequence-"))
    for count in map(int, arguments.files.split(",")):
        print(f"mount of {count} files: {mount_time(directory, count):.2f} s")
    full_read(directory, arguments.planes)


if __name__ == "__main__":
    main()
