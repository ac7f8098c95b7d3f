"""The machine the bench runs on: page cache and memory set up before a timed read, the CPU other processes
take meanwhile, a process's CPU and memory figures, and the description the report starts with."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil

GIB = 2**30


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


# -- a process's figures


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
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


# -- other processes' load


def _busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (user, nice, system, irq, softirq) since boot."""
    with open("/proc/stat") as handle:
        fields = [int(value) for value in handle.readline().split()[1:8]]
    user, nice, system, _idle, _iowait, irq, softirq = fields
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


class OtherLoad:
    """Times a block and measures the CPU that processes other than this one and ``pid`` (a daemon) used
    meanwhile, in cores: the machine is shared, and a busy neighbour explains an outlier."""

    def __init__(self, pid: int | None = None) -> None:
        self.pid = pid
        self.seconds = 0.0
        self.cores = 0.0
        self._busy = self._own0 = self._start = 0.0

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


# -- the machine


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


PACKAGES = (
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
)


def machine() -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = []
    for name in PACKAGES:
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
