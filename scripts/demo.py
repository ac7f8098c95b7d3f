"""`make demo`: write a sample image, mount it, read it through zarr, print what was seen, unmount."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
import zarr

sys.path.insert(0, str(Path(__file__).parent))
from make_sample import write_samples


def zarrfs(*args: str) -> None:
    command = [sys.executable, "-m", "zarrfs", *args]
    print("$ zarrfs " + " ".join(args), flush=True)
    subprocess.run(command, check=True)


def main() -> None:
    samples = Path("samples")
    source = samples / "sample.ome.tif"
    if not source.exists():
        write_samples(samples)
    zarrfs("info", str(source))
    with tempfile.TemporaryDirectory(prefix="zarrfs-demo-") as directory:
        mountpoint = str(Path(directory) / "sample.ome.zarr")  # bioio and napari pick a reader by .zarr
        Path(mountpoint).mkdir()
        started = time.perf_counter()
        zarrfs("mount", str(source), mountpoint)
        print(f"mounted in {time.perf_counter() - started:.2f} s")
        try:
            print("$ ls " + mountpoint, "\n  ", " ".join(sorted(p.name for p in Path(mountpoint).iterdir())))
            # NGFF 0.4 on Zarr v2, the default layout, which every client reads.
            group = zarr.open_group(mountpoint, mode="r")
            multiscales = group.attrs["multiscales"][0]
            print("axes:", [axis["name"] for axis in multiscales["axes"]])
            for dataset in multiscales["datasets"]:
                level = group[dataset["path"]]
                scale = dataset["coordinateTransformations"][0]["scale"]
                print(f"level {dataset['path']}: shape {level.shape} chunks {level.chunks} scale {scale}")
            array = group["0"]
            print("array 0:", array.shape, array.dtype, "chunks", array.chunks)
            started = time.perf_counter()
            served = array[:]
            seconds = time.perf_counter() - started
            print(f"read {served.nbytes / 2**20:.0f} MiB through the mount in {seconds:.2f} s")
            expected = tifffile.imread(source)
            same = np.array_equal(served, expected)
            print("equal to tifffile.imread:", same)
            if not same:
                sys.exit("demo failed: data read through the mount differs from the source")
        finally:
            zarrfs("unmount", mountpoint)
    print("demo OK")


if __name__ == "__main__":
    main()
