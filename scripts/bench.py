"""Benchmark zarrfs against the tools users would pick instead, side by side in one run (issue 4).

    python scripts/bench.py --output BENCHMARKS.md      # full run (what `make bench` does), ~20-25 min
    python scripts/bench.py --quick                     # smoke run on small images, a few minutes
    python scripts/bench.py --workdir DIR --only a,d    # images and mounts under DIR; a subset of images

Generated images (kept in --workdir, default ./bench-data, and reused when present; the directory must stay
out of version control):
  a  plane.tif       2-D uint16, deflate tiles 256x256, smooth structures + noise (microscopy-like), 2.5 GiB
  b  stack.ome.tif   3-D OME-TIFF z-stack, uint16, uncompressed, 1 GiB
  c  slide.ome.tif   RGB uint8 slide-like pyramid, JPEG tiles, reduced levels in SubIFDs, 1.7 GiB level 0
  d  sparse.tif      BigTIFF of 50 GiB logical size: only a central block of tiles is written, the rest of the
                     tiles have offset 0 / bytecount 0, so the file is ~80 MB

Workloads (each read through the mount uses a fresh mount: zarrfs cache and kernel page cache empty, the
source file itself in the page cache):
  1  full read of level 0: tensorstore / zarr-python / dask through the mount; tifffile.imread; zarr-python
     over tifffile's aszarr store; zarr-python over zarrfs.open_store (in-process); tensorstore and
     zarr-python over an OME-Zarr copy converted beforehand (ome-zarr-py, conversion timed)
  2  random chunk files: open + read + close latency, p50/p99, cold then warm
  3  time to first chunk: mount + zarr open + one chunk, vs the whole conversion
  4  every level once, coarse to fine (viewer-style), vs level 0 alone
  5  daemon peak RSS (VmHWM) while reading an image >= 4x the cache size
  6  second pass over the same data (kernel page cache) vs first pass

Prints PASS/FAIL per target and writes the report (--output). Missed targets are re-run under py-spy (when
installed) and the report lists where the time went. Every mount is unmounted (also on Ctrl-C).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import datetime
import gc
import importlib.metadata
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from zarrfs.core.options import parse_size

GENERATOR_VERSION = 1
TILE = 256
GIB = 2**30
# zarrfs's default --cache-size, which every mount here uses unless it says otherwise.
DEFAULT_CACHE = "512MiB"
MB = 1e6

# ---------------------------------------------------------------------------------------------------------
# Sizes


@dataclass(frozen=True)
class Sizes:
    label: str
    plane: int  # (a) side of the square 2-D image
    stack: tuple[int, int, int]  # (b) z, y, x
    slide: int  # (c) side of level 0
    slide_levels: int  # (c) stored levels, level 0 included
    sparse: int  # (d) side
    sparse_block: int  # (d) side of the written central block, in tiles
    rss_cache: str  # --cache-size of the mount whose peak RSS is measured (image a must be >= 4x)
    random_chunks: int  # chunk files per random-access pass
    suffix: str  # file name suffix, so that quick and full images live side by side


FULL = Sizes("full", 36864, (128, 2048, 2048), 24576, 6, 163840, 32, "512MiB", 400, "")
QUICK = Sizes("quick", 8192, (16, 1024, 1024), 4096, 4, 163840, 8, "32MiB", 150, "-quick")


# ---------------------------------------------------------------------------------------------------------
# Image generation: tile by tile from smooth separable fields plus noise, so memory stays bounded.


class Waves:
    """``terms`` smooth 1-D profiles, each a sum of three sinusoids with random frequency and phase."""

    def __init__(self, rng: np.random.Generator, terms: int = 4, period: float = 300.0) -> None:
        self.freq = rng.uniform(0.5, 3.0, (terms, 3)) / period
        self.phase = rng.uniform(0.0, 2 * np.pi, (terms, 3))

    def __call__(self, coords: np.ndarray) -> np.ndarray:
        angles = coords[None, None, :] * self.freq[:, :, None] + self.phase[:, :, None]
        return np.sin(angles).sum(axis=1).astype(np.float32)  # (terms, len(coords))


class Field:
    """A smooth 2-D (or 3-D) field: sum over terms of u(y) * v(x) (* w(z)); structures where it is high."""

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.u, self.v, self.w = Waves(rng), Waves(rng), Waves(rng, period=40.0)
        self.noise = rng.normal(0.0, 6.0, 2**23).astype(np.float32)

    def raw(self, rows: np.ndarray, columns: np.ndarray, z: float | None = None) -> np.ndarray:
        u = self.u(rows.astype(np.float64))
        if z is not None:
            u = u * self.w(np.array([z], dtype=np.float64))[:, :1]
        return u.T @ self.v(columns.astype(np.float64))

    def noise_like(self, shape: tuple[int, ...], key: int) -> np.ndarray:
        size = math.prod(shape)
        offset = (key * 2654435761) % (self.noise.size - size)
        return self.noise[offset : offset + size].reshape(shape)

    def intensity(
        self, rows: np.ndarray, columns: np.ndarray, key: int, z: float | None = None
    ) -> np.ndarray:
        """uint16 microscopy-like pixels: dim background, bright smooth blobs, Gaussian noise."""
        s = self.raw(rows, columns, z)
        np.maximum(s, 0, out=s)
        s *= s
        s *= 200.0
        s += 100.0
        s += self.noise_like(s.shape, key)
        return np.clip(s, 0, 65535).astype(np.uint16)


def _tile_coords(index: int, step: int = 1) -> np.ndarray:
    """Level-0 coordinates of the pixels of tile ``index`` of a level reduced ``step`` times."""
    return (np.arange(index * TILE, (index + 1) * TILE) * step + (step - 1) / 2).astype(np.float64)


def plane_tiles(field_: Field, side: int) -> Iterator[np.ndarray]:
    tiles = math.ceil(side / TILE)
    for i in range(tiles):
        rows = _tile_coords(i)
        for j in range(tiles):
            yield field_.intensity(rows, _tile_coords(j), key=i * tiles + j)


def stack_planes(field_: Field, shape: tuple[int, int, int]) -> Iterator[np.ndarray]:
    depth, height, width = shape
    rows, columns = np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64)
    for z in range(depth):
        yield field_.intensity(rows, columns, key=z, z=float(z))


def slide_tiles(field_: Field, side: int, step: int) -> Iterator[np.ndarray]:
    """RGB uint8 tiles of a slide-like image reduced ``step`` times: stained tissue on a bright background."""
    background = np.array([242.0, 240.0, 245.0], dtype=np.float32)
    stroma = np.array([225.0, 140.0, 185.0], dtype=np.float32)
    nuclei = np.array([95.0, 60.0, 150.0], dtype=np.float32)
    tiles = math.ceil(side / TILE)
    for i in range(tiles):
        rows = _tile_coords(i, step)
        for j in range(tiles):
            s = field_.raw(rows, _tile_coords(j, step))
            tissue = np.clip((s - 0.5) / 3.0, 0.0, 1.0)[..., None]
            dense = np.clip((s - 5.0) / 2.0, 0.0, 1.0)[..., None]
            rgb = background + tissue * (stroma - background) + dense * (nuclei - stroma)
            rgb += field_.noise_like((TILE, TILE, 1), key=i * tiles + j + step * 7919) * 0.7
            yield np.clip(rgb, 0, 255).astype(np.uint8)


def sparse_tiles(field_: Field, side: int, block: int) -> Iterator[np.ndarray | None]:
    """Tiles of the central ``block`` x ``block`` square and the first tile (tifffile needs the first item of
    the iterator to be an array); None, so not stored at all, everywhere else."""
    tiles = math.ceil(side / TILE)
    first = (tiles - block) // 2
    for i in range(tiles):
        inside_rows = first <= i < first + block
        rows = _tile_coords(i) if inside_rows or i == 0 else None
        for j in range(tiles):
            if rows is not None and ((inside_rows and first <= j < first + block) or i == j == 0):
                yield field_.intensity(rows, _tile_coords(j), key=i * tiles + j)
            else:
                yield None


@dataclass
class Image:
    key: str
    title: str
    path: Path
    kind: str  # "compressed" or "uncompressed": which full-read target applies
    shape: tuple[int, ...]  # level 0 as zarrfs serves it (canonical axes)
    dtype: str
    axes: str
    description: str
    full_read: bool = True  # False for the virtual image that does not fit in memory
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * np.dtype(self.dtype).itemsize


def image_specs(sizes: Sizes, workdir: Path) -> list[Image]:
    s = sizes
    z, y, x = s.stack
    return [
        Image(
            "a",
            "2-D deflate-tiled uint16",
            workdir / f"plane{s.suffix}.tif",
            "compressed",
            (s.plane, s.plane),
            "uint16",
            "yx",
            f"{s.plane}x{s.plane} uint16, tiles 256x256, deflate (zlib level 1), no predictor, BigTIFF",
            params={"side": s.plane},
        ),
        Image(
            "b",
            "3-D OME-TIFF z-stack",
            workdir / f"stack{s.suffix}.ome.tif",
            "uncompressed",
            (z, y, x),
            "uint16",
            "zyx",
            f"{z}x{y}x{x} (z,y,x) uint16, uncompressed pages, OME-XML with physical sizes",
            params={"shape": [z, y, x]},
        ),
        Image(
            "c",
            "JPEG RGB slide pyramid",
            workdir / f"slide{s.suffix}.ome.tif",
            "compressed",
            (3, s.slide, s.slide),
            "uint8",
            "cyx",
            f"{s.slide}x{s.slide} RGB uint8, tiles 256x256, JPEG, "
            f"{s.slide_levels - 1} reduced levels in SubIFDs, "
            "OME-TIFF",
            params={"side": s.slide, "levels": s.slide_levels},
        ),
        Image(
            "d",
            "sparse 50 GiB BigTIFF",
            workdir / f"sparse{s.suffix}.tif",
            "compressed",
            (s.sparse, s.sparse),
            "uint16",
            "yx",
            f"{s.sparse}x{s.sparse} uint16 ({s.sparse**2 * 2 / GIB:.0f} GiB logical), "
            "tiles 256x256, deflate; "
            f"only the central {s.sparse_block}x{s.sparse_block} tiles and the first tile are stored",
            full_read=False,
            params={"side": s.sparse, "block": s.sparse_block},
        ),
    ]


def _sidecar(image: Image) -> Path:
    return image.path.with_name(image.path.name + ".json")


def write_deflate_plane(path: Path, tiles: Iterator[np.ndarray | None], side: int) -> None:
    """A side x side uint16 BigTIFF of deflate tiles (level 1, no predictor); None tiles stay unwritten."""
    tifffile.imwrite(
        path,
        tiles,
        shape=(side, side),
        dtype="uint16",
        tile=(TILE, TILE),
        bigtiff=True,
        maxworkers=2,
        metadata=None,
        compression="zlib",
        compressionargs={"level": 1},
        predictor=False,
    )


def generate(image: Image) -> float:
    """Write the image unless a matching one exists; returns the seconds spent (0 when reused)."""
    expected = {"generator": GENERATOR_VERSION, "key": image.key, **image.params}
    sidecar = _sidecar(image)
    if image.path.exists() and sidecar.exists():
        with contextlib.suppress(ValueError):
            if json.loads(sidecar.read_text()) == expected:
                return 0.0
    partial = image.path.parent / ".partial" / image.path.name
    partial.parent.mkdir(parents=True, exist_ok=True)
    print(f"  generating {image.path.name}: {image.description}", flush=True)
    start = time.perf_counter()
    field_ = Field(seed=ord(image.key))
    if image.key == "a":
        side = image.params["side"]
        write_deflate_plane(partial, plane_tiles(field_, side), side)
    elif image.key == "b":
        shape = tuple(image.params["shape"])
        metadata = {
            "axes": "ZYX",
            "PhysicalSizeX": 0.325,
            "PhysicalSizeXUnit": "µm",
            "PhysicalSizeY": 0.325,
            "PhysicalSizeYUnit": "µm",
            "PhysicalSizeZ": 1.0,
            "PhysicalSizeZUnit": "µm",
        }
        tifffile.imwrite(
            partial,
            stack_planes(field_, shape),
            shape=shape,
            dtype="uint16",
            photometric="minisblack",
            bigtiff=True,
            metadata=metadata,
        )
    elif image.key == "c":
        side, levels = image.params["side"], image.params["levels"]
        options = {
            "tile": (TILE, TILE),
            "compression": "jpeg",
            "photometric": "rgb",
            "dtype": "uint8",
            "maxworkers": 2,
        }
        metadata = {
            "axes": "YXS",
            "PhysicalSizeX": 0.25,
            "PhysicalSizeXUnit": "µm",
            "PhysicalSizeY": 0.25,
            "PhysicalSizeYUnit": "µm",
        }
        with tifffile.TiffWriter(partial, bigtiff=True) as tif:
            tif.write(
                slide_tiles(field_, side, 1),
                shape=(side, side, 3),
                subifds=levels - 1,
                metadata=metadata,
                **options,
            )
            for level in range(1, levels):
                step = 2**level
                reduced = math.ceil(side / step)
                tif.write(
                    slide_tiles(field_, reduced, step), shape=(reduced, reduced, 3), subfiletype=1, **options
                )
    elif image.key == "d":
        side, block = image.params["side"], image.params["block"]
        write_deflate_plane(partial, sparse_tiles(field_, side, block), side)
        with tifffile.TiffFile(partial) as tif:
            stored = int(np.count_nonzero(np.asarray(tif.pages[0].databytecounts)))
        if stored != block * block + 1:
            raise RuntimeError(f"sparse image stores {stored} tiles, expected {block * block + 1}")
    os.replace(partial, image.path)
    sidecar.write_text(json.dumps(expected))
    seconds = time.perf_counter() - start
    print(
        f"  wrote {image.path.name}: {image.path.stat().st_size / MB:.0f} MB in {seconds:.0f} s", flush=True
    )
    return seconds


# ---------------------------------------------------------------------------------------------------------
# Mounts: always unmounted, also on errors and signals; daemon found by its mount point for RSS and profiles.

_ACTIVE_MOUNTS: list[Mount] = []


def _zarrfs_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "zarrfs", *args]


def find_daemon(mountpoint: str) -> int | None:
    import psutil

    # The daemon is the forked `zarrfs mount SOURCE MOUNTPOINT` command, once that has returned.
    for process in psutil.process_iter(["pid", "cmdline"]):
        cmdline = process.info.get("cmdline") or []
        if "mount" in cmdline and mountpoint in cmdline:
            return int(process.info["pid"])
    return None


def _status_kib(pid: int, field: str) -> int:
    """One memory field of /proc/<pid>/status (given in KiB), in bytes; 0 when absent."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    return 0


def peak_rss_bytes(pid: int) -> int:
    """VmHWM: the process's peak resident set size so far (exact, unlike sampling)."""
    return _status_kib(pid, "VmHWM")


def current_rss_bytes(pid: int) -> int:
    return _status_kib(pid, "VmRSS")


def cpu_seconds(pid: int) -> float:
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


class Mount:
    """``with Mount(src, mnt, options) as m``: m.seconds (time until live), m.pid, m.peak_rss after exit."""

    def __init__(self, source: Path, mountpoint: Path, options: list[str], log_dir: Path) -> None:
        self.source = str(source.resolve())
        self.mountpoint = str(mountpoint.resolve())
        self.options = options
        self.log_file = str(log_dir / (mountpoint.name + ".log"))
        self.seconds = 0.0
        self.pid: int | None = None
        self.start_rss = 0
        self.peak_rss = 0

    def __enter__(self) -> Mount:
        os.makedirs(self.mountpoint, exist_ok=True)
        if os.path.ismount(self.mountpoint) or _is_stale(self.mountpoint):
            subprocess.run(_zarrfs_command("unmount", self.mountpoint), check=False, capture_output=True)
        # Benchmarks read Zarr v3 unless a run names --ngff: both layouts, no longer the default.
        layouts = () if "--ngff" in self.options else ("--ngff", "all")
        command = _zarrfs_command(
            "mount", self.source, self.mountpoint, *self.options, *layouts, "--log-file", self.log_file
        )
        start = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        self.seconds = time.perf_counter() - start
        if result.returncode != 0:
            raise RuntimeError(f"mount failed: {' '.join(command)}: {result.stderr.strip()}")
        _ACTIVE_MOUNTS.append(self)
        self.pid = find_daemon(self.mountpoint)
        if self.pid is not None:
            self.start_rss = current_rss_bytes(self.pid)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self not in _ACTIVE_MOUNTS:
            return
        _ACTIVE_MOUNTS.remove(self)
        if self.pid is not None:
            with contextlib.suppress(OSError):
                self.peak_rss = peak_rss_bytes(self.pid)
        gc.collect()  # drop file handles a client may still hold
        for attempt in range(6):
            result = subprocess.run(
                _zarrfs_command("unmount", self.mountpoint), capture_output=True, text=True, check=False
            )
            if result.returncode == 0 or not os.path.ismount(self.mountpoint):
                break
            time.sleep(0.5 * (attempt + 1))
        else:
            subprocess.run(_zarrfs_command("unmount", "--lazy", self.mountpoint), check=False)
        self._wait_for_daemon()

    def _wait_for_daemon(self) -> None:
        import psutil

        if self.pid is None:
            return
        try:
            process = psutil.Process(self.pid)
            process.wait(timeout=20)
        except psutil.NoSuchProcess:
            return
        except psutil.TimeoutExpired:
            print(f"  daemon {self.pid} still running after unmount: stopping it", flush=True)
            with contextlib.suppress(psutil.NoSuchProcess):
                process.terminate()
                process.wait(timeout=10)


def _is_stale(path: str) -> bool:
    try:
        os.stat(path)
    except OSError as error:
        return error.errno == 107  # ENOTCONN
    return False


def _unmount_all() -> None:
    for mount in list(_ACTIVE_MOUNTS):
        with contextlib.suppress(Exception):
            mount.close()


def _on_signal(signum: int, _frame: object) -> None:
    _unmount_all()
    raise SystemExit(128 + signum)


# ---------------------------------------------------------------------------------------------------------
# Readers


def fingerprint(array: np.ndarray) -> int:
    """A cheap checksum of a strided sample, to check that every reader returned the same pixels."""
    index = tuple(slice(None, None, 97) if n >= 1000 else slice(None) for n in array.shape)
    return int(np.asarray(array[index], dtype=np.uint64).sum())


def canonical(image: Image, array: np.ndarray) -> np.ndarray:
    """tifffile returns RGB as (y, x, samples); zarrfs and the converted copy serve (c, y, x)."""
    if image.axes == "cyx" and array.shape[-1] == 3:
        return np.moveaxis(array, -1, 0)
    return array


def ts_open(path: str, driver: str = "zarr3") -> Any:
    import tensorstore as ts

    return ts.open({"driver": driver, "kvstore": {"driver": "file", "path": path}}, read=True).result()


def ts_read(path: str) -> np.ndarray:
    return ts_open(path).read().result()


def zarr_read(path: str) -> np.ndarray:
    import zarr

    return zarr.open_array(path, mode="r", zarr_format=3)[...]


def dask_read(path: str) -> np.ndarray:
    import dask.array as da
    import zarr

    array = zarr.open_array(path, mode="r", zarr_format=3)
    return da.from_zarr(array).compute(scheduler="threads")


def tifffile_read(path: Path) -> np.ndarray:
    return tifffile.imread(path)


def aszarr_read(path: Path) -> np.ndarray:
    import zarr

    store = tifffile.imread(path, aszarr=True, level=0)
    try:
        node = zarr.open(store, mode="r")
        return node[...]
    finally:
        store.close()


def store_read(path: Path) -> np.ndarray:
    import zarr

    import zarrfs

    store = zarrfs.open_store(path, ngff="0.5")  # read as Zarr v3 below
    try:
        return zarr.open_group(store, mode="r", zarr_format=3)["0"][...]
    finally:
        store.close()


def core_read_all(path: Path, options: dict[str, Any] | None = None) -> tuple[int, int]:
    """Every level-0 chunk file made by zarrfs's core in-process, 2 threads, no FUSE and no client."""
    from concurrent.futures import ThreadPoolExecutor

    from zarrfs.core import open_dataset
    from zarrfs.core.options import serve_options

    dataset = open_dataset(path, serve_options(**(options or {})))
    try:
        array = dataset.layouts[-1].arrays[0]
        keys = ["0/c/" + "/".join(map(str, index)) for index in np.ndindex(*array.grid)]
        with ThreadPoolExecutor(2) as pool:
            total = sum(pool.map(lambda key: len(dataset.tree.read_file(key)), keys, chunksize=16))
        return total, len(keys)
    finally:
        dataset.close()


def warm_page_cache(path: Path) -> float:
    """Read the whole file once so that every reader starts with the source in the page cache."""
    start = time.perf_counter()
    buffer = bytearray(16 * 2**20)
    with open(path, "rb", buffering=0) as handle:
        while handle.readinto(buffer):
            pass
    return time.perf_counter() - start


def warm_tree(path: Path) -> None:
    """Read every file under ``path`` (a converted copy) into the page cache."""
    for file in sorted(path.rglob("*")):
        if file.is_file():
            warm_page_cache(file)


def touch_memory(nbytes: int) -> None:
    """Write ``nbytes`` of fresh memory once and free it. This VM backs guest memory lazily and takes freed
    memory back within seconds (virtio-balloon free page reporting): the first write to such memory runs at
    ~0.5 GB/s instead of ~10. Touching what a read will need just before it keeps that cost, which would fall
    on whichever reader runs first, out of every figure."""
    available = _meminfo("MemAvailable")
    nbytes = min(nbytes, int(available * 0.6))
    piece = 256 * 2**20
    pieces = []
    for _ in range(max(1, nbytes // piece)):
        block = np.empty(piece, dtype=np.uint8)
        block.fill(1)
        pieces.append(block)
    del pieces


def _meminfo(key: str) -> int:
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def memory_touch_rates() -> tuple[float, float]:
    """GB/s of a first write to 1 GiB of memory after 5 s idle, and of a second write to a fresh 1 GiB."""
    rates = []
    for pause in (5.0, 0.0):
        time.sleep(pause)
        start = time.perf_counter()
        block = np.empty(2**30, dtype=np.uint8)
        block.fill(1)
        rates.append(block.nbytes / (time.perf_counter() - start) / 1e9)
        del block
    return rates[0], rates[1]


def read_chunk_file(path: str, buffer: bytearray) -> int:
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        view = memoryview(buffer)[:size]
        done = 0
        while done < size:
            n = os.readv(fd, [view[done:]])
            if n == 0:
                break
            done += n
        return done
    finally:
        os.close(fd)


def level_metadata(mountpoint: str, level: str) -> dict[str, Any]:
    with open(os.path.join(mountpoint, level, "zarr.json")) as handle:
        return json.load(handle)


def chunk_grid(mountpoint: str, level: str, v2: bool = False) -> tuple[tuple[int, ...], tuple[int, ...], int]:
    """(chunk grid, chunk shape, bytes per raw chunk) of a served level, from its v3 (or v2) metadata."""
    if v2:
        with open(os.path.join(mountpoint, level, ".zarray")) as handle:
            meta = json.load(handle)
        shape, chunks, dtype = meta["shape"], meta["chunks"], meta["dtype"]
    else:
        meta = level_metadata(mountpoint, level)
        shape, chunks = meta["shape"], meta["chunk_grid"]["configuration"]["chunk_shape"]
        dtype = meta["data_type"]
    grid = tuple(math.ceil(s / c) for s, c in zip(shape, chunks, strict=True))
    return grid, tuple(chunks), math.prod(chunks) * np.dtype(dtype).itemsize


def chunk_path(mountpoint: str, level: str, index: tuple[int, ...], v2: bool = False) -> str:
    return os.path.join(mountpoint, level, *([] if v2 else ["c"]), *map(str, index))


def plain_read_all(mountpoint: str) -> tuple[float, int]:
    """Every level-0 chunk file read with open/readv/close into one buffer: the mount's own serving rate."""
    grid, _, chunk_bytes = chunk_grid(mountpoint, "0")
    paths = [chunk_path(mountpoint, "0", index) for index in np.ndindex(*grid)]
    buffer = bytearray(chunk_bytes + 4096)
    start = time.perf_counter()
    total = sum(read_chunk_file(path, buffer) for path in paths)
    return time.perf_counter() - start, total


def levels_of(mountpoint: str) -> list[str]:
    with open(os.path.join(mountpoint, "zarr.json")) as handle:
        group = json.load(handle)
    return [dataset["path"] for dataset in group["attributes"]["ome"]["multiscales"][0]["datasets"]]


def level_1_is_computed(path: Path) -> bool:
    """Whether zarrfs makes level 1 from level 0 (else the file stores it)."""
    from zarrfs.core import open_dataset
    from zarrfs.core.pyramid import ComputedLevel

    dataset = open_dataset(path)
    try:
        return len(dataset.levels) > 1 and isinstance(dataset.levels[1], ComputedLevel)
    finally:
        dataset.close()


def center_chunk_region(shape: tuple[int, ...], chunks: tuple[int, ...]) -> tuple[slice, ...]:
    region = []
    for extent, chunk in zip(shape, chunks, strict=True):
        index = (math.ceil(extent / chunk) - 1) // 2
        region.append(slice(index * chunk, min((index + 1) * chunk, extent)))
    return tuple(region)


# ---------------------------------------------------------------------------------------------------------
# Profiling (py-spy, raw collapsed stacks) of missed targets


def py_spy() -> str | None:
    candidate = Path(sys.executable).with_name("py-spy")
    return str(candidate) if candidate.exists() else shutil.which("py-spy")


class Profile:
    """py-spy record of ``pid`` (collapsed stacks) while the body runs; summarize() names the hot spots."""

    def __init__(self, pid: int, output: Path, rate: int = 250) -> None:
        self.output = output
        self.process: subprocess.Popen[bytes] | None = None
        binary = py_spy()
        if binary is None:
            return
        output.parent.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                binary,
                "record",
                "-p",
                str(pid),
                "-o",
                str(output),
                "--format",
                "raw",
                "-r",
                str(rate),
                "--nonblocking",
                "--threads",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)  # let py-spy attach

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def summarize(self, top: int = 8) -> list[str]:
        """Where the busy samples went: self time by function, then inclusive time of zarrfs functions.
        Samples whose innermost frame is a wait (idle workers, a thread waiting for another) are counted
        apart, so the percentages are of the samples that did work."""
        if self.process is None:
            return ["py-spy not installed: no profile (pip install py-spy)"]
        if not self.output.exists():
            return ["py-spy wrote no profile"]
        leaf: Counter[str] = Counter()
        inclusive: Counter[str] = Counter()
        busy = waiting = 0
        for line in self.output.read_text().splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            frames = [_frame_name(frame) for frame in stack.split(";") if not frame.startswith("thread ")]
            if not frames:
                continue  # a thread in native code only (libfuse waiting for the kernel)
            if frames[-1].split(" (")[0] in _WAITS:
                waiting += count
                continue
            busy += count
            leaf[frames[-1]] += count
            for frame in set(frames):
                if "zarrfs/" in frame or "mfusepy" in frame:
                    inclusive[frame] += count
        if busy == 0:
            return ["profile is empty (process idle or exited)"]
        lines = [
            f"{busy} busy samples ({waiting} more in waits); self time: "
            + "; ".join(f"{name} {100 * n / busy:.0f}%" for name, n in leaf.most_common(top))
        ]
        if inclusive:
            lines.append(
                "inclusive (zarrfs, mfusepy): "
                + "; ".join(f"{name} {100 * n / busy:.0f}%" for name, n in inclusive.most_common(top))
            )
        return lines


# Innermost frames that mean a thread is waiting, not working.
_WAITS = {
    "_worker",
    "Condition.wait",
    "Event.wait",
    "wait",
    "select",
    "EpollSelector.select",
    "sleep",
    "_wait_for_tstate_lock",
    "BaseSelectorEventLoop._read_from_self",
    "SimpleQueue.get",
    "get",
}


def _frame_name(frame: str) -> str:
    """'read (zarrfs/core/tree.py:123)' -> 'read (zarrfs/core/tree.py)'; site-packages paths shortened."""
    name, _, location = frame.partition(" (")
    location = location.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/work/main/", "lib/python3"):
        if marker in location:
            location = location.split(marker, 1)[1]
    if "/zarrfs/" in location:
        location = "zarrfs/" + location.split("/zarrfs/", 1)[1]
    return f"{name} ({location})" if location else name


# ---------------------------------------------------------------------------------------------------------
# The benchmark


@dataclass
class Row:
    image: str
    workload: str
    tool: str
    seconds: float
    nbytes: int = 0
    note: str = ""

    @property
    def gbps(self) -> float:
        return self.nbytes / self.seconds / 1e9 if self.seconds > 0 and self.nbytes else 0.0


@dataclass
class Target:
    name: str
    image: str
    measured: str
    goal: str
    passed: bool
    explanation: list[str] = field(default_factory=list)
    profile: Callable[[], list[str]] | None = None


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.sizes = QUICK if args.quick else FULL
        self.workdir = Path(args.workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.mnt_dir = self.workdir / "mnt"
        self.log_dir = self.workdir / "logs"
        self.converted_dir = self.workdir / "converted"
        self.profile_dir = self.workdir / "profiles"
        for directory in (self.mnt_dir, self.log_dir, self.converted_dir):
            directory.mkdir(exist_ok=True)
        self.images = [i for i in image_specs(self.sizes, self.workdir) if i.key in args.only]
        self.rows: list[Row] = []
        self.random: list[dict[str, Any]] = []
        self.ttfc: list[dict[str, Any]] = []
        self.levels: list[dict[str, Any]] = []
        # image -> CPU seconds of the daemon and of the client in the best full read through the mount
        self.cpu: dict[str, tuple[float, float]] = {}
        self.rss: list[dict[str, Any]] = []
        self.passes: list[dict[str, Any]] = []
        self.targets: list[Target] = []
        self.generation: dict[str, float] = {}
        self.fingerprints: dict[str, dict[str, int]] = {}
        self.mismatches: list[str] = []
        self.started = time.perf_counter()
        self.seconds: dict[str, float] = {}
        self.convert_rate: float | None = None  # seconds per byte of the conversion of image a
        self.memory_rates = (float("nan"), float("nan"))
        self.waited = 0.0  # seconds spent waiting for other processes to go quiet

    # -- helpers

    def log(self, message: str) -> None:
        elapsed = time.perf_counter() - self.started
        print(f"[{elapsed:6.0f} s] {message}", flush=True)

    def mount(self, image: Image, name: str, options: list[str] | None = None) -> Mount:
        return Mount(image.path, self.mnt_dir / f"{image.key}-{name}", options or [], self.log_dir)

    def record(
        self, image: Image, workload: str, tool: str, seconds: float, nbytes: int = 0, note: str = ""
    ) -> Row:
        row = Row(image.key, workload, tool, seconds, nbytes, note)
        self.rows.append(row)
        rate = f"{row.gbps:.2f} GB/s" if nbytes else ""
        self.log(f"  {image.key} {workload:<10} {tool:<44} {seconds:8.3f} s {rate} {note}")
        return row

    def check(self, image: Image, tool: str, array: np.ndarray) -> None:
        value = fingerprint(canonical(image, array))
        prints = self.fingerprints.setdefault(image.key, {})
        reference = next(iter(prints.values()), None)
        prints[tool] = value
        if reference is not None and value != reference:
            self.mismatches.append(f"image {image.key}: {tool} returned different pixels")
            self.log(f"  WARNING: {tool} returned different pixels for image {image.key}")

    def prepare(self, image: Image, warm: Path | None = None, factor: float = 2.0) -> None:
        """Before a timed read: the source (or ``warm``) in the page cache, and the memory the read will
        need (its result, the mount's page cache, the daemon's cache) touched once; see touch_memory.
        First waits (up to 20 s) until other processes leave the CPUs alone."""
        gc.collect()
        self.waited += wait_until_quiet()
        if warm is not None and warm.is_dir():
            warm_tree(warm)
        else:
            warm_page_cache(warm or image.path)
        touch_memory(int(factor * image.nbytes) + 2**29)

    def timed_read(
        self,
        image: Image,
        workload: str,
        tool: str,
        read: Callable[[], np.ndarray],
        note: str = "",
        warm: Path | None = None,
    ) -> Row:
        seconds, nbytes, *_ = self.measure(image, tool, read, warm=warm)
        return self.record(image, workload, tool, seconds, nbytes, note)

    def find(self, image: str, tool: str) -> Row | None:
        return next((row for row in self.rows if row.image == image and row.tool == tool), None)

    # -- workloads

    def run(self) -> None:
        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGINT, _on_signal)
        atexit.register(_unmount_all)
        self.log(f"{self.sizes.label} run, workdir {self.workdir}")
        self.memory_rates = memory_touch_rates()
        self.log(
            f"memory: first write after idle {self.memory_rates[0]:.2f} GB/s, "
            f"to just-freed memory {self.memory_rates[1]:.2f} GB/s"
        )
        for image in self.images:
            self.generation[image.key] = generate(image)
        for image in self.images:
            start = time.perf_counter()
            self.log(
                f"image {image.key}: {image.title} ({image.path.name}, "
                f"{image.path.stat().st_size / MB:.0f} MB file, {image.nbytes / GIB:.2f} GiB pixels)"
            )
            warm_page_cache(image.path)
            self.time_to_first_chunk(image)
            if image.full_read:
                self.full_reads(image)
                self.all_levels(image)
            self.random_access(image)
            if image.full_read:
                self.conversion(image)
            self.seconds[image.key] = time.perf_counter() - start
        self.estimate_conversions()
        self.evaluate()
        self.profile_misses()

    def time_to_first_chunk(self, image: Image) -> None:
        import zarr

        runs = []
        for _ in range(self.args.repeats):
            warm_page_cache(image.path)
            with self.mount(image, "ttfc") as mount:
                start = time.perf_counter()
                array = zarr.open_group(mount.mountpoint, mode="r", zarr_format=3)["0"]
                opened = time.perf_counter() - start
                region = center_chunk_region(array.shape, array.chunks)
                array[region]
                first = time.perf_counter() - start - opened
            runs.append(
                {
                    "mount": mount.seconds,
                    "open": opened,
                    "chunk": first,
                    "total": mount.seconds + opened + first,
                }
            )
        best = min(runs, key=lambda run: run["total"])
        self.ttfc.append({"image": image.key, **best, "runs": [run["total"] for run in runs]})
        self.log(
            f"  {image.key} first chunk: mount {best['mount']:.3f} s + open {best['open']:.3f} s + "
            f"chunk {best['chunk']:.3f} s = {best['total']:.3f} s (runs: "
            + ", ".join(f"{run['total']:.2f}" for run in runs)
            + " s)"
        )

    def measure(
        self,
        image: Image,
        tool: str,
        read: Callable[[], np.ndarray],
        pid: int | None = None,
        warm: Path | None = None,
    ) -> tuple[float, int, float, float]:
        """One prepared, timed read: (seconds, bytes, cores used meanwhile by other processes, CPU seconds of
        this process, the reader's threads included); the pixels are checked against the other readers."""
        self.prepare(image, warm)
        cpu_before = time.process_time()
        with OtherLoad(pid) as load:
            array = read()
        reader_cpu = time.process_time() - cpu_before
        self.check(image, tool, array)
        nbytes = array.nbytes
        del array
        gc.collect()
        return load.seconds, nbytes, load.cores, reader_cpu

    def best_of(self, image: Image, tool: str, read: Callable[[], np.ndarray], workload: str = "full") -> Row:
        """The fastest of --repeats prepared reads (this VM is noisy: +-30% between identical runs)."""
        runs = [self.measure(image, tool, read) for _ in range(self.args.repeats)]
        return self.record(image, workload, tool, min(run[0] for run in runs), runs[0][1], _runs_note(runs))

    def full_reads(self, image: Image) -> None:
        path = image.path
        self.best_of(image, "tifffile.imread (in-process)", lambda: tifffile_read(path))
        if (os.cpu_count() or 1) > tifffile.TIFF.MAXWORKERS:
            # tifffile decodes with half the cores by default; what it does with all of them, for reference.
            self.best_of(
                image,
                f"tifffile.imread, maxworkers={os.cpu_count()} (in-process)",
                lambda: tifffile.imread(path, maxworkers=os.cpu_count()),
            )
        self.best_of(image, "zarr-python over tifffile aszarr (in-process)", lambda: aszarr_read(path))
        self.best_of(image, "zarr-python over zarrfs.open_store (in-process)", lambda: store_read(path))
        runs = []
        for _ in range(self.args.repeats):
            self.prepare(image)
            start = time.perf_counter()
            _, count = core_read_all(path)
            runs.append((time.perf_counter() - start, image.nbytes))
        self.record(
            image,
            "full",
            "zarrfs core only (in-process, 2 threads)",
            min(run[0] for run in runs),
            image.nbytes,
            f"{count} chunk files made, no FUSE, no client; " + _runs_note(runs),
        )

        # Tensorstore through fresh mounts: first passes (daemon RSS and CPU), then the page-cache passes.
        options = ["--cache-size", self.sizes.rss_cache] if image.key == "a" else []
        runs, cpus, peaks, starts = [], [], [], []
        for repeat in range(self.args.repeats):
            with self.mount(image, "ts", options) as mount:
                level0 = os.path.join(mount.mountpoint, "0")
                cpu_before = cpu_seconds(mount.pid) if mount.pid else 0.0
                runs.append(
                    self.measure(
                        image, "tensorstore through the mount", lambda m=level0: ts_read(m), mount.pid
                    )
                )
                cpus.append((cpu_seconds(mount.pid) - cpu_before) if mount.pid else 0.0)
                if repeat == self.args.repeats - 1:
                    second = self.best_of(
                        image,
                        "tensorstore through the mount (page cache)",
                        lambda m=level0: ts_read(m),
                        workload="2nd pass",
                    )
                    plain_seconds, plain_bytes = plain_read_all(mount.mountpoint)
                    plain = self.record(
                        image,
                        "2nd pass",
                        "plain open/read/close of every chunk file (page cache)",
                        plain_seconds,
                        plain_bytes,
                    )
            peaks.append(mount.peak_rss)
            starts.append(mount.start_rss)
        best = min(range(len(runs)), key=lambda i: runs[i][0])
        first = self.record(
            image,
            "full",
            "tensorstore through the mount",
            runs[best][0],
            runs[best][1],
            f"daemon CPU {cpus[best]:.1f} s ({cpus[best] / runs[best][0]:.1f} cores), client CPU "
            f"{runs[best][3]:.1f} s; " + _runs_note(runs),
        )
        self.cpu[image.key] = (cpus[best], runs[best][3])
        cache_bytes = parse_size(self.sizes.rss_cache if image.key == "a" else DEFAULT_CACHE)
        self.rss.append(
            {
                "image": image.key,
                "cache": cache_bytes,
                "ratio": image.nbytes / cache_bytes,
                "start": max(starts),
                "peak": max(peaks),
            }
        )
        self.log(
            f"  {image.key} daemon RSS: {max(starts) / MB:.0f} MB at start, peak {max(peaks) / MB:.0f} MB, "
            f"cache {cache_bytes / MB:.0f} MB"
        )
        self.passes.append(
            {"image": image.key, "first": first.gbps, "second": second.gbps, "plain": plain.gbps}
        )

        with self.mount(image, "zarr") as mount:
            level0 = os.path.join(mount.mountpoint, "0")
            self.timed_read(image, "full", "zarr-python through the mount", lambda: zarr_read(level0))
        with self.mount(image, "dask") as mount:
            level0 = os.path.join(mount.mountpoint, "0")
            self.timed_read(
                image, "full", "dask (threads) + zarr-python through the mount", lambda: dask_read(level0)
            )

    def all_levels(self, image: Image) -> None:
        level0 = self.find(image.key, "tensorstore through the mount")
        entry = self._read_all_levels(image, [])
        entry["level0"] = level0.seconds if level0 else float("nan")
        self.levels.append(entry)
        if entry["all"] / entry["level0"] > 1.35 and entry["computed"]:
            # Coarse to fine, the coarsest computed level needs all of level 0 before level 0 is read: with a
            # cache smaller than level 0 it is made twice. Measure the same order with a cache that holds it
            # and the level below (3/4 of the cache holds chunks; an LRU cache just too small for a sequential
            # read would keep none of it).
            cache = f"{math.ceil(image.nbytes * 2 / GIB * 10) / 10}GiB"
            bigger = self._read_all_levels(image, ["--cache-size", cache])
            bigger["level0"] = entry["level0"]
            self.levels.append(bigger)

    def _read_all_levels(self, image: Image, options: list[str]) -> dict[str, Any]:
        cache = options[options.index("--cache-size") + 1] if "--cache-size" in options else DEFAULT_CACHE
        with self.mount(image, "levels", options) as mount:
            names = levels_of(mount.mountpoint)
            per_level = []
            level_bytes = []
            self.prepare(image, factor=2.7)
            start = time.perf_counter()
            nbytes = 0
            for name in reversed(names):  # coarse to fine, as a viewer zooms in
                level_start = time.perf_counter()
                array = ts_read(os.path.join(mount.mountpoint, name))
                per_level.append((name, time.perf_counter() - level_start))
                level_bytes.append(array.nbytes)
                nbytes += array.nbytes
                del array
            seconds = time.perf_counter() - start
        self.record(
            image,
            "levels",
            f"tensorstore, all {len(names)} levels coarse to fine, cache {cache}",
            seconds,
            nbytes,
        )
        return {
            "image": image.key,
            "levels": len(names),
            "cache": cache,
            "all": seconds,
            "per_level": per_level,
            "computed": level_1_is_computed(image.path),
            "data_vs_level0": nbytes / level_bytes[-1],
        }

    def random_access(self, image: Image) -> None:
        variants: list[tuple[str, list[str]]] = [("default chunks", [])]
        if image.key == "a":
            variants = [
                ("256x256 chunks (decoded)", ["--chunks", "256,256"]),
                (
                    "256x256 pass-through (zlib, v2)",
                    ["--chunks", "256,256", "--compressor", "zlib", "--ngff", "0.4"],
                ),
                *variants,
            ]
        for label, options in variants:
            rng = np.random.default_rng(42)
            with self.mount(image, "random", options) as mount:
                v2 = "--ngff" in options
                grid, chunks, chunk_bytes = chunk_grid(mount.mountpoint, "0", v2)
                indices = self._sample(image, grid, chunks, rng)
                paths = [chunk_path(mount.mountpoint, "0", index, v2) for index in indices]
                buffer = bytearray(chunk_bytes + 4096)
                cold = self._latencies(paths, buffer)
                rng.shuffle(paths)
                warm = self._latencies(paths, buffer)
            entry = {
                "image": image.key,
                "variant": label,
                "chunk_bytes": chunk_bytes,
                "count": len(paths),
                "cold_p50": _pct(cold, 50),
                "cold_p99": _pct(cold, 99),
                "warm_p50": _pct(warm, 50),
                "warm_p99": _pct(warm, 99),
                "options": options,
            }
            self.random.append(entry)
            self.log(
                f"  {image.key} random {label}: cold p50 {entry['cold_p50']:.2f} ms p99 "
                f"{entry['cold_p99']:.2f} ms, warm p50 {entry['warm_p50']:.3f} ms p99 "
                f"{entry['warm_p99']:.3f} ms"
            )
        if image.key == "a":
            self.core_chunk_latency(image)

    def _sample(
        self, image: Image, grid: tuple[int, ...], chunks: tuple[int, ...], rng: np.random.Generator
    ) -> list[tuple[int, ...]]:
        """Distinct random chunk indices; for the sparse image half inside its written block, half anywhere
        (almost all never written)."""
        total = math.prod(grid)
        count = min(self.sizes.random_chunks, total)
        if image.key != "d":
            return [
                tuple(int(i) for i in np.unravel_index(f, grid))
                for f in rng.choice(total, count, replace=False)
            ]
        tiles = math.ceil(image.shape[-1] / TILE)
        first_pixel = (tiles - image.params["block"]) // 2 * TILE
        last_pixel = first_pixel + image.params["block"] * TILE - 1
        low = [first_pixel // c for c in chunks[-2:]]
        high = [last_pixel // c for c in chunks[-2:]]
        half = count // 2
        inside = {
            (int(rng.integers(low[0], high[0] + 1)), int(rng.integers(low[1], high[1] + 1)))
            for _ in range(half)
        }
        anywhere = {
            tuple(int(i) for i in np.unravel_index(f, grid)) for f in rng.choice(total, half, replace=False)
        }
        return sorted(inside | anywhere, key=lambda _: rng.random())

    def core_chunk_latency(self, image: Image) -> None:
        """The cold 256x256 chunk in-process (no FUSE): the share of the latency zarrfs's core needs."""
        from zarrfs.core import open_dataset
        from zarrfs.core.options import serve_options

        dataset = open_dataset(image.path, serve_options(chunks=(256, 256)))
        try:
            array = dataset.layouts[-1].arrays[0]
            rng = np.random.default_rng(42)
            indices = [
                tuple(int(rng.integers(0, n)) for n in array.grid) for _ in range(self.sizes.random_chunks)
            ]
            latencies = []
            for index in indices:
                start = time.perf_counter()
                dataset.tree.read_file("0/c/" + "/".join(map(str, index)))
                latencies.append((time.perf_counter() - start) * 1e3)
        finally:
            dataset.close()
        self.random.append(
            {
                "image": image.key,
                "variant": "256x256 chunks, zarrfs core in-process (no FUSE)",
                "chunk_bytes": 256 * 256 * 2,
                "count": len(indices),
                "cold_p50": _pct(latencies, 50),
                "cold_p99": _pct(latencies, 99),
                "warm_p50": float("nan"),
                "warm_p99": float("nan"),
                "options": [],
            }
        )

    @staticmethod
    def _latencies(paths: list[str], buffer: bytearray) -> list[float]:
        latencies = []
        for path in paths:
            start = time.perf_counter()
            read_chunk_file(path, buffer)
            latencies.append((time.perf_counter() - start) * 1e3)
        return latencies

    def conversion(self, image: Image) -> None:
        out = self.converted_dir / (image.path.name.split(".")[0] + ".ome.zarr")
        shutil.rmtree(out, ignore_errors=True)
        chunks = self._served_chunks(image)
        self.prepare(image)
        start = time.perf_counter()
        convert_with_ome_zarr(image, out, chunks)
        seconds = time.perf_counter() - start
        size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
        self.record(
            image,
            "convert",
            "ome-zarr-py write_image (whole pyramid)",
            seconds,
            image.nbytes,
            f"{size / MB:.0f} MB written, chunks {list(chunks)}, zstd",
        )
        if image.key == "a":
            self.convert_rate = seconds / image.nbytes
        level0 = str(out / "s0")
        self.timed_read(
            image, "full", "tensorstore over the converted OME-Zarr", lambda: ts_read(level0), warm=out / "s0"
        )
        self.timed_read(
            image,
            "full",
            "zarr-python over the converted OME-Zarr",
            lambda: zarr_read(level0),
            warm=out / "s0",
        )
        if image.key == "a":
            self.client_ceiling(image, level0)
        if not self.args.keep_converted:
            shutil.rmtree(out, ignore_errors=True)

    def client_ceiling(self, image: Image, converted_level0: str) -> None:
        """Tensorstore reading an uncompressed local Zarr copy from the page cache: what the client itself
        can do on this machine, without FUSE (explains the second-pass figure)."""
        import tensorstore as ts

        raw = self.converted_dir / "raw-copy.zarr"
        shutil.rmtree(raw, ignore_errors=True)
        data = ts_read(converted_level0)
        spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(raw)}}
        chunk_shape = list(self._served_chunks(image))
        target = ts.open(
            spec,
            create=True,
            dtype=ts.uint16,
            shape=data.shape,
            chunk_layout=ts.ChunkLayout(chunk_shape=chunk_shape),
            codec=ts.CodecSpec({"driver": "zarr3", "codecs": [{"name": "bytes"}]}),
        ).result()
        target.write(data).result()
        del data, target
        ts_read(str(raw))  # a first read, as the mount's second pass follows a first one
        self.timed_read(
            image,
            "2nd pass",
            "tensorstore over an uncompressed local Zarr (page cache)",
            lambda: ts_read(str(raw)),
            warm=raw,
        )
        shutil.rmtree(raw, ignore_errors=True)

    def _served_chunks(self, image: Image) -> tuple[int, ...]:
        from zarrfs.core import open_dataset

        dataset = open_dataset(image.path)
        try:
            return dataset.levels[0].chunks
        finally:
            dataset.close()

    def estimate_conversions(self) -> None:
        """The virtual image is not converted (50 GiB of pixels, ~30 min here): its conversion time is
        estimated from the measured rate of image a (seconds per byte of pixels)."""
        for image in self.images:
            if image.full_read or self.convert_rate is None:
                continue
            self.record(
                image,
                "convert",
                "ome-zarr-py write_image (ESTIMATED from image a's rate)",
                self.convert_rate * image.nbytes,
                image.nbytes,
                "not run: 50 GiB of pixels",
            )

    # -- targets

    def evaluate(self) -> None:
        for image in self.images:
            if not image.full_read:
                continue
            imread = self.find(image.key, "tifffile.imread (in-process)")
            ts_mount = self.find(image.key, "tensorstore through the mount")
            if imread and ts_mount:
                goal = 0.8 if image.kind == "compressed" else 0.5
                ratio = imread.seconds / ts_mount.seconds
                target = Target(
                    "Full read through the mount (tensorstore) vs tifffile.imread",
                    image.key,
                    f"{ratio:.2f}x ({ts_mount.gbps:.2f} vs {imread.gbps:.2f} GB/s)",
                    f">= {goal}x ({image.kind} source)",
                    ratio >= goal,
                )
                self.targets.append(target)
                if not target.passed:
                    target.explanation = self._explain_full_read(image)
                    target.profile = lambda image=image: self._profile_full_read(image)
            aszarr = self.find(image.key, "zarr-python over tifffile aszarr (in-process)")
            store = self.find(image.key, "zarr-python over zarrfs.open_store (in-process)")
            if aszarr and store:
                ratio = aszarr.seconds / store.seconds
                target = Target(
                    "zarrfs.open_store + zarr-python vs zarr-python over tifffile aszarr",
                    image.key,
                    f"{ratio:.2f}x faster ({store.seconds:.2f} vs {aszarr.seconds:.2f} s)",
                    ">= 1.5x faster",
                    ratio >= 1.5,
                )
                self.targets.append(target)
                if not target.passed:
                    target.explanation = self._explain_store(image)
                    target.profile = lambda image=image: self._profile_store(image)
        for entry in self.random:
            if entry["variant"] == "256x256 chunks (decoded)":
                target = Target(
                    "Cold random chunk p50, 256x256 deflate chunk through the mount",
                    entry["image"],
                    f"{entry['cold_p50']:.2f} ms (p99 {entry['cold_p99']:.2f} ms)",
                    "<= 1.5 ms",
                    entry["cold_p50"] <= 1.5,
                )
                self.targets.append(target)
                if not target.passed:
                    target.explanation = self._explain_random()
                    image = next(i for i in self.images if i.key == entry["image"])
                    target.profile = lambda image=image: self._profile_random(image)
        for entry in self.ttfc:
            image = next(i for i in self.images if i.key == entry["image"])
            convert = next((r for r in self.rows if r.image == image.key and r.workload == "convert"), None)
            speedup = convert.seconds / entry["total"] if convert else float("nan")
            estimated = " (conversion estimated)" if convert and "ESTIMATED" in convert.tool else ""
            target = Target(
                "Time to first chunk (mount + open + first chunk)",
                image.key,
                f"{entry['total']:.2f} s, {speedup:.0f}x sooner than converting{estimated}",
                "<= 1 s and >= 100x sooner than converting",
                entry["total"] <= 1.0 and speedup >= 100,
            )
            self.targets.append(target)
            if not target.passed:
                command, daemon = startup_seconds()
                target.explanation = [
                    f"mount {entry['mount']:.2f} s, zarr open {entry['open']:.2f} s, "
                    f"first chunk {entry['chunk']:.2f} s (best of "
                    + ", ".join(f"{t:.2f}" for t in entry.get("runs", []))
                    + " s)",
                    f"of the mount, starting Python with its imports takes {command:.2f} s for the zarrfs "
                    f"command and {daemon:.2f} s for the daemon it starts (best of 5 each)",
                ]
        for entry in self.levels:
            if entry["cache"] != DEFAULT_CACHE:
                continue  # measured to explain a miss, not a target of its own
            ratio = entry["all"] / entry["level0"]
            target = Target(
                "All levels read (coarse to fine) vs level 0 alone",
                entry["image"],
                f"{ratio:.2f}x ({entry['all']:.1f} vs {entry['level0']:.1f} s)",
                "<= 1.35x",
                ratio <= 1.35,
            )
            self.targets.append(target)
            if not target.passed:
                image = next(i for i in self.images if i.key == entry["image"])
                target.explanation = self._explain_levels(image, entry)
                target.profile = lambda image=image: self._profile_levels(image)
        for entry in self.rss:
            if entry["ratio"] < 4:
                continue
            limit = entry["cache"] + 200 * MB
            target = Target(
                f"Daemon peak RSS reading {entry['ratio']:.1f}x the cache size",
                entry["image"],
                f"{entry['peak'] / MB:.0f} MB (cache {entry['cache'] / MB:.0f} MB)",
                f"<= cache + 200 MB = {limit / MB:.0f} MB",
                entry["peak"] <= limit,
            )
            self.targets.append(target)
            if not target.passed:
                target.explanation = [
                    f"daemon RSS right after mount (imports, parsed TIFF): "
                    f"{entry['start'] / MB:.0f} MB; peak - start = "
                    f"{(entry['peak'] - entry['start']) / MB:.0f} MB for a "
                    f"{entry['cache'] / MB:.0f} MB cache"
                ]
        for entry in self.passes:
            target = Target(
                "Second pass through the mount (tensorstore, kernel page cache)",
                entry["image"],
                f"{entry['second']:.2f} GB/s (first pass {entry['first']:.2f} GB/s)",
                ">= 2 GB/s",
                entry["second"] >= 2.0,
            )
            self.targets.append(target)
            if not target.passed:
                target.explanation = self._explain_second_pass(entry)

    def _explain_full_read(self, image: Image) -> list[str]:
        rows = {r.tool: r for r in self.rows if r.image == image.key}
        core = rows.get("zarrfs core only (in-process, 2 threads)")
        ts_mount = rows.get("tensorstore through the mount")
        imread = rows.get("tifffile.imread (in-process)")
        lines = []
        if core and ts_mount and imread:
            lines.append(
                f"making every chunk in-process (decode + assembly, no FUSE) takes {core.seconds:.2f} s "
                f"= {imread.seconds / core.seconds:.2f}x tifffile.imread's speed; FUSE transfer and the "
                f"client add {ts_mount.seconds - core.seconds:.2f} s on top"
            )
        if ts_mount and imread and image.key in self.cpu:
            daemon, client = self.cpu[image.key]
            cores = os.cpu_count() or 1
            floor = (daemon + client) / cores
            lines.append(
                f"daemon and client together used {daemon + client:.1f} CPU seconds ({daemon:.1f} + "
                f"{client:.1f}): on {cores} cores no schedule finishes in less than {floor:.2f} s = "
                f"{imread.seconds / floor:.2f}x tifffile.imread's speed"
            )
        if ts_mount and ts_mount.note:
            lines.append(ts_mount.note)
        return lines

    def _explain_store(self, image: Image) -> list[str]:
        rows = {r.tool: r for r in self.rows if r.image == image.key}
        core = rows.get("zarrfs core only (in-process, 2 threads)")
        store = rows.get("zarr-python over zarrfs.open_store (in-process)")
        aszarr = rows.get("zarr-python over tifffile aszarr (in-process)")
        if core and store and aszarr:
            return [
                f"zarrfs makes the chunks in {core.seconds:.2f} s; zarr-python over the store spends "
                f"{store.seconds - core.seconds:.2f} s more (its per-chunk work, copies, thread hops); "
                f"even with none of that it would be {aszarr.seconds / core.seconds:.2f}x faster than aszarr"
            ]
        return []

    def _explain_random(self) -> list[str]:
        core = next((e for e in self.random if "core in-process" in e["variant"]), None)
        through = next((e for e in self.random if e["variant"] == "256x256 chunks (decoded)"), None)
        passthrough = next((e for e in self.random if "pass-through" in e["variant"]), None)
        lines = []
        if core and through:
            lines.append(
                f"the same chunks made in-process (read + decode + copy, no FUSE): p50 "
                f"{core['cold_p50']:.2f} ms; FUSE lookups/open/read/release add "
                f"{through['cold_p50'] - core['cold_p50']:.2f} ms"
            )
        if passthrough:
            lines.append(
                f"served as stored deflate bytes (pass-through, no decode): cold p50 "
                f"{passthrough['cold_p50']:.2f} ms"
            )
        return lines

    def _explain_levels(self, image: Image, entry: dict[str, Any]) -> list[str]:
        per_level = ", ".join(f"{name}: {seconds:.1f} s" for name, seconds in entry["per_level"])
        lines = [f"per level, coarse to fine: {per_level}"]
        if not entry["computed"]:
            lines.append(
                f"the levels are stored: reading all of them decodes and moves "
                f"{entry['data_vs_level0']:.2f}x the data of level 0, each block once"
            )
        core = self.find(image.key, "zarrfs core only (in-process, 2 threads)")
        if entry["computed"] and core and image.nbytes > parse_size(DEFAULT_CACHE):
            bound = (core.seconds + entry["level0"]) / entry["level0"]
            lines.append(
                f"level 0 ({image.nbytes / GIB:.1f} GiB) does not fit in the {DEFAULT_CACHE} cache, and "
                f"coarse to fine the coarsest level needs all of it first: level 0 is made twice, so even "
                f"with free coarser levels the ratio is at least (making level 0 in-process "
                f"{core.seconds:.1f} s + reading it {entry['level0']:.1f} s) / {entry['level0']:.1f} s "
                f"= {bound:.2f}x"
            )
        for bigger in self.levels:
            if bigger["image"] == image.key and bigger["cache"] != DEFAULT_CACHE:
                lines.append(
                    f"with --cache-size {bigger['cache']} (holds level 0): {bigger['all']:.1f} s = "
                    f"{bigger['all'] / bigger['level0']:.2f}x level 0 alone"
                )
        return lines

    def _explain_second_pass(self, entry: dict[str, Any]) -> list[str]:
        lines = [f"plain open/read/close of every chunk file in the second pass: {entry['plain']:.2f} GB/s"]
        ceiling = self.find(entry["image"], "tensorstore over an uncompressed local Zarr (page cache)")
        if ceiling:
            lines.append(
                f"tensorstore reading an uncompressed local Zarr copy from the page cache (no FUSE): "
                f"{ceiling.gbps:.2f} GB/s"
            )
        return lines

    # -- profiles of missed targets

    def profile_misses(self) -> None:
        if self.args.no_profile:
            return
        done: set[tuple[str, str]] = set()
        for target in self.targets:
            if target.passed or target.profile is None:
                continue
            key = (target.name, target.image)
            if key in done:
                continue
            done.add(key)
            self.log(f"profiling missed target: {target.name} (image {target.image})")
            try:
                target.explanation += ["py-spy: " + line for line in target.profile()]
            except Exception as error:  # a profile is a bonus; never lose the results for it
                target.explanation.append(f"profile failed: {type(error).__name__}: {error}")

    def _profile_daemon(
        self, image: Image, name: str, options: list[str], body: Callable[[str], None]
    ) -> list[str]:
        with self.mount(image, "profile", options) as mount:
            if mount.pid is None:
                return ["daemon not found"]
            self.prepare(image, factor=2.7)  # as for the measured runs
            profile = Profile(mount.pid, self.profile_dir / f"{image.key}-{name}.txt")
            try:
                body(mount.mountpoint)
            finally:
                profile.stop()
        return profile.summarize()

    def _profile_full_read(self, image: Image) -> list[str]:
        def body(mountpoint: str) -> None:
            ts_read(os.path.join(mountpoint, "0"))

        return self._profile_daemon(image, "full-read", [], body)

    def _profile_levels(self, image: Image) -> list[str]:
        def body(mountpoint: str) -> None:
            for name in reversed(levels_of(mountpoint)):
                ts_read(os.path.join(mountpoint, name))

        return self._profile_daemon(image, "levels", [], body)

    def _profile_random(self, image: Image) -> list[str]:
        def body(mountpoint: str) -> None:
            grid, _, chunk_bytes = chunk_grid(mountpoint, "0")
            buffer = bytearray(chunk_bytes + 4096)
            rng = np.random.default_rng(1)
            total = math.prod(grid)
            for flat in rng.choice(total, min(total, 4 * self.sizes.random_chunks), replace=False):
                index = tuple(int(i) for i in np.unravel_index(flat, grid))
                read_chunk_file(chunk_path(mountpoint, "0", index), buffer)

        return self._profile_daemon(image, "random", ["--chunks", "256,256"], body)

    def _profile_store(self, image: Image) -> list[str]:
        self.prepare(image)
        profile = Profile(os.getpid(), self.profile_dir / f"{image.key}-store.txt")
        try:
            store_read(image.path)
        finally:
            profile.stop()
        return profile.summarize()

    # -- report

    def summary(self) -> str:
        lines = ["", "TARGETS"]
        for target in self.targets:
            verdict = "PASS" if target.passed else "FAIL"
            lines.append(
                f"  {verdict}  [{target.image}] {target.name}: {target.measured} (goal {target.goal})"
            )
            lines += [f"          {line}" for line in target.explanation]
        passed = sum(t.passed for t in self.targets)
        lines.append(f"  {passed}/{len(self.targets)} targets met")
        return "\n".join(lines)


def convert_with_ome_zarr(image: Image, out: Path, chunks: tuple[int, ...]) -> None:
    """What a user runs first without zarrfs: level 0 through dask, ome-zarr-py writes the whole pyramid."""
    import dask.array as da
    import zarr
    from ome_zarr.writer import write_image

    store = tifffile.imread(image.path, aszarr=True, level=0)
    try:
        array = da.from_zarr(zarr.open(store, mode="r"))
        if image.axes == "cyx":
            array = array.transpose(2, 0, 1)
        array = array.rechunk(chunks)
        group = zarr.open_group(str(out), mode="w")
        write_image(array, group, axes=image.axes)
    finally:
        store.close()


def _runs_note(runs: list[tuple[float, ...]]) -> str:
    """'best of 7.28, 6.91 s', with the CPU other processes took meanwhile where it was notable."""
    note = "" if len(runs) < 2 else "best of " + ", ".join(f"{run[0]:.2f}" for run in runs) + " s"
    others = [run[2] for run in runs if len(run) > 2]
    if others and max(others) >= 0.15:
        note += (
            ("; " if note else "")
            + "other processes used "
            + ", ".join(f"{o:.1f}" for o in others)
            + " cores"
        )
    return note


def _busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (user, nice, system, irq, softirq) since boot."""
    with open("/proc/stat") as handle:
        fields = [int(value) for value in handle.readline().split()[1:8]]
    user, nice, system, _idle, _iowait, irq, softirq = fields
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def wait_until_quiet(limit: float = 20.0, threshold: float = 0.25) -> float:
    """Wait until other processes use less than ``threshold`` cores over a second (the machine may be
    shared); give up after ``limit`` seconds. Returns the seconds waited beyond the first check."""
    start = time.perf_counter()
    while True:
        with OtherLoad() as load:
            time.sleep(1.0)
        waited = time.perf_counter() - start - load.seconds
        if load.cores < threshold or waited + load.seconds >= limit:
            return max(0.0, waited)


class OtherLoad:
    """Times a block and measures the CPU that processes other than this one and ``pid`` (a daemon) used
    meanwhile, in cores: the machine is shared, and a busy neighbour explains an outlier."""

    def __init__(self, pid: int | None = None) -> None:
        self.pid = pid
        self.seconds = 0.0
        self.cores = 0.0

    def _own(self) -> float:
        times = os.times()
        own = times.user + times.system
        if self.pid is not None:
            with contextlib.suppress(Exception):
                own += cpu_seconds(self.pid)
        return own

    def __enter__(self) -> OtherLoad:
        self._busy, self._own0 = _busy_seconds(), self._own()
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._start
        other = (_busy_seconds() - self._busy) - (self._own() - self._own0)
        # CPU times tick every 10 ms: only runs of half a second and more say anything.
        self.cores = max(0.0, other / self.seconds) if self.seconds >= 0.5 else 0.0


def startup_seconds() -> tuple[float, float]:
    """Best-of-5 wall times of a Python start with the imports of the ``zarrfs`` command and of its daemon."""

    def best(code: str) -> float:
        times = []
        for _ in range(5):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            times.append(time.perf_counter() - start)
        return min(times)

    return best("import zarrfs.cli"), best(
        "import zarrfs.frontends.mount, zarrfs.frontends.fuse_ops, tifffile"
    )


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


# ---------------------------------------------------------------------------------------------------------
# BENCHMARKS.md


def machine() -> dict[str, str]:
    import psutil

    cpu = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    packages = [
        "zarrfs",
        "zarr",
        "tensorstore",
        "tifffile",
        "imagecodecs",
        "numpy",
        "numcodecs",
        "dask",
        "ome-zarr",
        "ngff-zarr",
        "mfusepy",
        "psutil",
        "py-spy",
    ]
    versions = []
    for name in packages:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions.append(f"{name} {importlib.metadata.version(name)}")
    fuse = subprocess.run(["fusermount3", "--version"], capture_output=True, text=True, check=False)
    return {
        "cpu": f"{os.cpu_count()} cores ({cpu})",
        "ram": f"{psutil.virtual_memory().total / GIB:.1f} GiB",
        "kernel": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "fuse": (fuse.stdout or fuse.stderr).strip() or "unknown",
        "packages": ", ".join(versions),
    }


def _fmt_s(seconds: float) -> str:
    if math.isnan(seconds):
        return "n/a"
    return f"{seconds:.3f}" if seconds < 10 else f"{seconds:.1f}"


def render(bench: Bench, command: str, total_seconds: float) -> str:
    info = machine()
    out = [
        "# Benchmarks",
        "",
        "zarrfs against what users would run instead (convert first with ome-zarr-py, or open the TIFF "
        "in-process with tifffile), measured side by side in one run by `scripts/bench.py` (issue 4). "
        "Written by the script: "
        "rerun it rather than editing numbers by hand.",
        "",
        f"Run: {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, {bench.sizes.label} size, "
        f"{total_seconds / 60:.1f} min in all.",
        "",
        "## Machine",
        "",
        f"- CPU: {info['cpu']}",
        f"- RAM: {info['ram']}",
        f"- Kernel: {info['kernel']}; FUSE: {info['fuse']}",
        f"- Memory writes: {bench.memory_rates[0]:.2f} GB/s to fresh memory after 5 s idle, "
        f"{bench.memory_rates[1]:.2f} GB/s to just-freed memory (this VM backs guest memory lazily and takes "
        "freed memory back within seconds; see Method)",
        f"- Python {info['python']}",
        f"- Packages: {info['packages']}",
        "",
        "## Rerun",
        "",
        "```console",
        "$ make bench                       # = .venv/bin/python scripts/bench.py --output BENCHMARKS.md",
        "$ python scripts/bench.py --quick  # smoke run on small images, a few minutes",
        f"$ {command}     # this run",
        "```",
        "",
        "Images are generated once into `--workdir` (default `./bench-data`, ~6 GB, keep it out of git) "
        "and reused. "
        "Options: `--only a,b,c,d`, `--keep-converted`, `--no-profile`.",
        "",
        "## Images",
        "",
        "| | image | file | pixels (level 0) | details |",
        "| --- | --- | --- | --- | --- |",
    ]
    for image in bench.images:
        size = image.path.stat().st_size
        out.append(
            f"| {image.key} | {image.title} | {size / MB:,.0f} MB | {image.nbytes / GIB:.2f} GiB | "
            f"{image.description} |"
        )
    out += [
        "",
        "## Method",
        "",
        "- Full reads and first-chunk times are the best of `--repeats` runs (all runs are listed); the "
        "other figures are one run. Each timed read waits (up to 20 s) until other processes use less "
        f"than a quarter of a core (this run waited {bench.waited:.0f} s in all); where they still used "
        "notable CPU during a run, the row says so. "
        "Defaults everywhere "
        "(`--compressor none`, chunks ~512x512 aligned to the tiles, 512 MiB cache) unless a row says "
        "otherwise.",
        "- Every read through the mount starts on a fresh mount: zarrfs cache and the mount's page cache "
        "empty. Readers run in the benchmark process (tensorstore, zarr-python, dask with its threaded "
        "scheduler); the daemon is `zarrfs mount` as users run it.",
        "- Before every timed read the source file (or the converted copy) is read into the page cache, and "
        "twice the result's size of memory is written once and freed. The VM this was written on evicts idle "
        "page cache within tens of seconds (DAMON reclaim) and hands freed guest memory back to the host "
        "(virtio-balloon free page reporting): without this, the first reader after a pause pays disk reads "
        "and page faults at the 'fresh memory' rate above.",
        "- Random access: open + read + close of whole chunk files with plain system calls, so the figures "
        "are the mount's, not a client's.",
        "- Image d (50 GiB of pixels) is not read whole nor converted: it does not fit in memory, and its "
        "conversion time is estimated from image a's measured conversion rate.",
        "",
        "## Results",
        "",
        "### 1. Full read of level 0, 6. second pass, and the conversion",
        "",
        "Ratio = speed relative to `tifffile.imread` of the same image (higher is faster).",
        "",
    ]
    for image in bench.images:
        order = {"full": 0, "2nd pass": 1, "convert": 2}
        rows = sorted(
            (r for r in bench.rows if r.image == image.key and r.workload in order),
            key=lambda r: order[r.workload],
        )
        if not rows:
            continue
        imread = bench.find(image.key, "tifffile.imread (in-process)")
        out += [
            f"**{image.key}: {image.title}**",
            "",
            "| workload | tool | seconds | GB/s | ratio | note |",
            "| --- | --- | ---: | ---: | ---: | --- |",
        ]
        for row in rows:
            ratio = f"{imread.seconds / row.seconds:.2f}x" if imread and row.workload != "convert" else ""
            rate = f"{row.gbps:.2f}" if row.nbytes else ""
            out.append(
                f"| {row.workload} | {row.tool} | {_fmt_s(row.seconds)} | {rate} | {ratio} | {row.note} |"
            )
        out.append("")
    out += [
        "### 2. Random chunk files (open + read + close), milliseconds",
        "",
        "| image | chunks | chunk bytes | n | cold p50 | cold p99 | warm p50 | warm p99 |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for e in bench.random:
        out.append(
            f"| {e['image']} | {e['variant']} | {e['chunk_bytes']:,} | {e['count']} | {e['cold_p50']:.2f} | "
            f"{e['cold_p99']:.2f} | {_ms(e['warm_p50'])} | {_ms(e['warm_p99'])} |"
        )
    out += [
        "",
        "Cold: fresh mount, source in the page cache. Warm: the same chunks again, in shuffled order "
        "(served by the kernel page cache). Image d samples half inside its written block, half anywhere.",
        "",
    ]
    out += [
        "### 3. Time to first chunk vs converting first",
        "",
        "| image | mount | zarr open | first chunk (center) | total (best) | all runs | conversion "
        "| conversion / total |",
        "| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    for e in bench.ttfc:
        convert = next((r for r in bench.rows if r.image == e["image"] and r.workload == "convert"), None)
        conv = (
            f"{convert.seconds:.1f} s{' (est.)' if 'ESTIMATED' in convert.tool else ''}" if convert else "n/a"
        )
        ratio = f"{convert.seconds / e['total']:.0f}x" if convert else "n/a"
        out.append(
            f"| {e['image']} | {e['mount']:.3f} s | {e['open']:.3f} s | {e['chunk']:.3f} s | "
            f"{e['total']:.3f} s | {', '.join(f'{t:.2f}' for t in e.get('runs', []))} s | {conv} | {ratio} |"
        )
    out += [
        "",
        "### 4. Every level once (tensorstore, coarse to fine) vs level 0 alone",
        "",
        "| image | levels | cache | level 0 alone | all levels | ratio | per level (coarse to fine) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for e in bench.levels:
        per = ", ".join(f"{n}: {s:.2f}" for n, s in e["per_level"])
        out.append(
            f"| {e['image']} | {e['levels']} | {e['cache']} | {e['level0']:.2f} s | {e['all']:.2f} s | "
            f"{e['all'] / e['level0']:.2f}x | {per} |"
        )
    out += [
        "",
        "### 5. Daemon memory while reading level 0 with tensorstore",
        "",
        "| image | cache size | image / cache | RSS after mount | peak RSS (VmHWM) | peak - cache |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for e in bench.rss:
        out.append(
            f"| {e['image']} | {e['cache'] / MB:.0f} MB | {e['ratio']:.1f}x | {e['start'] / MB:.0f} MB | "
            f"{e['peak'] / MB:.0f} MB | {(e['peak'] - e['cache']) / MB:.0f} MB |"
        )
    out += [
        "",
        "## Targets",
        "",
        "| result | target | image | measured | goal |",
        "| --- | --- | --- | --- | --- |",
    ]
    for t in bench.targets:
        out.append(
            f"| {'PASS' if t.passed else '**FAIL**'} | {t.name} | {t.image} | {t.measured} | {t.goal} |"
        )
    passed = sum(t.passed for t in bench.targets)
    out += ["", f"{passed} of {len(bench.targets)} targets met.", ""]
    misses = [t for t in bench.targets if not t.passed]
    if misses:
        out += ["### Misses, with what was measured", ""]
        for t in misses:
            out.append(f"- **[{t.image}] {t.name}**: {t.measured}.")
            out += [f"  - {line}" for line in t.explanation]
        out += ["", "Raw py-spy profiles (collapsed stacks) are kept in `<workdir>/profiles/`.", ""]
    if bench.mismatches:
        out += ["### Pixel mismatches", "", *[f"- {m}" for m in bench.mismatches], ""]
    notes = _kept_notes(bench.args.output)
    if notes:
        out += [notes, ""]
    return "\n".join(out).rstrip() + "\n"


NOTES_BEGIN = "<!-- notes: kept across runs -->"
NOTES_END = "<!-- /notes -->"


def _kept_notes(output: str | None) -> str:
    """A hand-written analysis block in the previous report (between the markers) is carried over."""
    if not output or not os.path.exists(output):
        return ""
    text = Path(output).read_text()
    start, end = text.find(NOTES_BEGIN), text.find(NOTES_END)
    return text[start : end + len(NOTES_END)] if 0 <= start < end else ""


def _ms(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output", help="write the report (Markdown) here, e.g. BENCHMARKS.md")
    parser.add_argument("--quick", action="store_true", help="small images: a smoke run of a few minutes")
    parser.add_argument("--workdir", default="bench-data", help="generated images, copies, mounts, logs")
    parser.add_argument("--only", default="a,b,c,d", help="comma-separated subset of the images a,b,c,d")
    parser.add_argument("--keep-converted", action="store_true", help="keep the converted OME-Zarr copies")
    parser.add_argument("--no-profile", action="store_true", help="do not re-run missed targets under py-spy")
    parser.add_argument(
        "--repeats", type=int, default=2, help="runs of each full read that a target uses (best)"
    )
    args = parser.parse_args()
    args.only = {key.strip() for key in args.only.split(",") if key.strip()}
    if os.path.exists("/proc/sys/vm") and not os.path.exists("/dev/fuse"):
        print("bench: /dev/fuse not found: FUSE is needed", file=sys.stderr)
        return 1
    started = time.perf_counter()
    bench = Bench(args)
    try:
        bench.run()
    finally:
        _unmount_all()
    total = time.perf_counter() - started
    print(bench.summary())
    print(f"\nfinished in {total / 60:.1f} min")
    results = {
        "rows": [vars(r) for r in bench.rows],
        "random": bench.random,
        "ttfc": bench.ttfc,
        "levels": bench.levels,
        "rss": bench.rss,
        "passes": bench.passes,
        "targets": [{k: v for k, v in vars(t).items() if k != "profile"} for t in bench.targets],
    }
    (bench.workdir / f"results-{bench.sizes.label}.json").write_text(
        json.dumps(results, indent=1, default=str)
    )
    if args.output:
        command = "python scripts/bench.py " + " ".join(sys.argv[1:])
        Path(args.output).write_text(render(bench, command, total))
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
