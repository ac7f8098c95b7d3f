"""NIfTI through zarrfs against nibabel, side by side (issue 12): full read of a volume, .nii and .nii.gz.

    python scripts/bench_nifti.py                      # 1 GiB volume in ./bench-data/nifti (kept, reused)
    python scripts/bench_nifti.py --size 256 --workdir DIR

For each file: nibabel ``dataobj[...]`` (mmap off, so that it reads), then a fresh mount read whole by
tensorstore (the source in the page cache for both), the time to the first chunk of a fresh mount, a second
full read on the same mount and the daemon's peak RSS. For .nii.gz the first read through the mount includes
the one pass that takes the seek points; the second does not.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from bench import Mount, fingerprint, peak_rss_bytes, touch_memory, ts_read, warm_page_cache

MIB = 2**20


def write_volume(path: Path, mebibytes: int) -> None:
    """A uint16 (x, y, z) = (1024, 1024, n) volume of smooth structures plus noise (MRI- or light-sheet-like:
    gzip takes it to about half)."""
    z = max(1, mebibytes // 2)
    rng = np.random.default_rng(12)
    values = np.empty((1024, 1024, z), np.uint16, order="F")
    ramp = (np.add.outer(np.arange(1024), np.arange(1024)) % 2048).astype(np.uint16)
    for plane in range(z):
        values[:, :, plane] = ramp + rng.integers(0, 64, (1024, 1024), np.uint16) + plane
    image = nib.Nifti1Image(values, np.diag([0.5, 0.5, 2.0, 1.0]))
    image.header.set_xyzt_units("mm", "sec")
    nib.save(image, str(path))


def nibabel_read(path: Path) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    values = nib.load(str(path), mmap=False).dataobj[...]
    return time.perf_counter() - start, values


def first_chunk_seconds(path: Path, mountpoint: Path, log_dir: Path) -> tuple[float, float]:
    """Mount, then read one chunk file: the mount command's time, and the chunk's once the mount is live."""
    with Mount(path, mountpoint, ["--ngff", "0.5"], log_dir) as mount:
        start = time.perf_counter()
        (Path(mount.mountpoint) / "0" / "c" / "0" / "0" / "0").read_bytes()
        return mount.seconds, time.perf_counter() - start


def measure(path: Path, workdir: Path) -> dict[str, float]:
    warm_page_cache(path)
    proxy = nib.load(str(path)).dataobj
    nbytes = proxy.dtype.itemsize * int(np.prod(proxy.shape))
    touch_memory(2 * nbytes)  # see bench.touch_memory: fresh memory is slow on this VM, for every reader
    nibabel_seconds, expected = nibabel_read(path)
    reference = fingerprint(np.ascontiguousarray(expected.T))
    del expected
    log_dir = workdir / "logs"
    log_dir.mkdir(exist_ok=True)
    mountpoint = workdir / f"mnt-{path.name.replace('.', '-')}"
    mount_seconds, first_chunk = first_chunk_seconds(path, mountpoint, log_dir)
    warm_page_cache(path)
    touch_memory(2 * nbytes)
    with Mount(path, mountpoint, ["--ngff", "0.5"], log_dir) as mount:
        array = str(Path(mount.mountpoint) / "0")
        start = time.perf_counter()
        served = ts_read(array)
        first_read = time.perf_counter() - start
        assert fingerprint(served) == reference, "tensorstore read other values than nibabel"
        del served
        touch_memory(2 * nbytes)
        start = time.perf_counter()
        ts_read(array)
        second_read = time.perf_counter() - start
        assert mount.pid is not None
        rss = peak_rss_bytes(mount.pid)
    return {
        "GB": nbytes / 1e9,
        "nibabel s": nibabel_seconds,
        "mount read s": first_read,
        "ratio": nibabel_seconds / first_read,
        "second read s": second_read,
        "mount s": mount_seconds,
        "first chunk s": first_chunk,
        "peak RSS MiB": rss / MIB,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("bench-data/nifti"))
    parser.add_argument("--size", type=int, default=1024, help="volume size in MiB (default 1024)")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    plain = args.workdir / f"volume-{args.size}.nii"
    packed = args.workdir / f"volume-{args.size}.nii.gz"
    for path in (plain, packed):
        if not path.exists():
            print(f"writing {path} ...", flush=True)
            write_volume(path, args.size)
    for path in (plain, packed):
        row = measure(path, args.workdir)
        print(path.name + ": " + ", ".join(f"{key} {value:.2f}" for key, value in row.items()), flush=True)


if __name__ == "__main__":
    sys.exit(main())
