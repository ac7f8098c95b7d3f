"""The remote rows (issue 15): images on an HTTP server (nginx over the work directory, its access log
counting the requests), reached directly (0 ms added) and through a proxy adding LATENCY_MS per request round
trip (scripts/bench/proxy.py). For the sparse COG: time to first chunk through a fresh mount of its URL and
the requests the open took; for the OME-TIFF: a full read through the mount against tifffile.imread over
fsspec, then a second pass through a fresh mount from the same --disk-cache. Steps a zarrfs without the
feature cannot take are recorded as not measured, with the reason."""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import numpy as np
import tifffile

from .chunkfiles import center_chunk_region
from .images import MB, Image
from .mounts import READ_FAILED, Mount, MountFailed, failure
from .readers import ts_read
from .results import REMOTE_TOOLS, RemoteOpen, RemoteRead, Unmeasured
from .servers import Requests, Server, count_requests, nginx_server
from .session import Session, warm_image

# Added latency per request round trip: none (nginx directly), and a server in the same region.
LATENCIES_MS = (0.0, 20.0)
# One layout, Zarr v3: the fewest files and documents.
MOUNT_OPTIONS = ["--ngff", "0.5"]


def run(session: Session, image: Image) -> None:
    access_log = session.log_dir / f"nginx-access-{image.key}.log"
    access_log.unlink(missing_ok=True)
    with nginx_server(image.path.parent, session.workdir / "nginx", session.log_dir, access_log) as nginx:
        for latency in LATENCIES_MS:
            with front(nginx.url, latency, session.log_dir) as base:
                counter = RequestCounter(access_log)
                url = f"{base}/{image.path.name}"
                if image.full_read:
                    _full_reads(session, image, url, latency, counter)
                else:
                    _first_chunk(session, image, url, latency, counter)


@contextlib.contextmanager
def front(url: str, latency: float, log_dir: Path) -> Iterator[str]:
    """The base URL clients use: nginx itself, or the delaying proxy in front of it."""
    if not latency:
        yield url
        return
    command = [
        sys.executable,
        "-m",
        "scripts.bench.proxy",
        "--upstream",
        url.removeprefix("http://"),
        "--latency-ms",
        f"{latency:g}",
    ]
    with Server("latency proxy", command, log_dir / "proxy.log") as proxy:
        yield proxy.url


class RequestCounter:
    """The requests nginx logged since the last call."""

    def __init__(self, access_log: Path) -> None:
        self.access_log = access_log
        self.position = count_requests(access_log)[1] if access_log.exists() else 0

    def since_last(self) -> Requests:
        time.sleep(0.05)  # nginx logs a request once it is done; the client may have its answer a bit before
        requests, self.position = count_requests(self.access_log, self.position)
        return requests


def _not_measured(session: Session, image: Image, what: str, reason: str) -> None:
    session.results.unmeasured.append(Unmeasured(image.key, what, reason))
    session.log(f"  {image.key} {what}: not measured: {reason}")


def _mount(session: Session, image: Image, url: str, name: str, options: list[str]) -> Mount:
    return Mount(url, session.mnt_dir / f"{image.key}-{name}", [*MOUNT_OPTIONS, *options], session.log_dir)


def _first_chunk(session: Session, image: Image, url: str, latency: float, counter: RequestCounter) -> None:
    """Mount of the URL + zarr open + the center chunk of level 0, on a fresh mount; the best of --repeats,
    with the requests each part made; the chunk checked against tifffile reading the local file."""
    import zarr

    runs = []
    try:
        for _ in range(session.settings.repeats):
            warm_image(image)
            counter.since_last()
            with _mount(session, image, url, f"ttfc-{latency:g}ms", []) as mount:
                opened_with = counter.since_last()
                start = time.perf_counter()
                array = zarr.open_group(mount.mountpoint, mode="r", zarr_format=3)["0"]
                assert isinstance(array, zarr.Array)
                opened = time.perf_counter() - start
                region = center_chunk_region(array.shape, array.chunks)
                chunk = array[region]
                first = time.perf_counter() - start - opened
                chunk_requests = counter.since_last()
            total = mount.seconds + opened + first
            runs.append(
                RemoteOpen(
                    image.key,
                    latency,
                    mount.seconds,
                    opened,
                    first,
                    total,
                    opened_with.count,
                    opened_with.nbytes,
                    chunk_requests.count,
                )
            )
    except MountFailed as error:
        _not_measured(session, image, f"first chunk over HTTP, {latency:g} ms", error.reason)
        return
    except READ_FAILED as error:
        _not_measured(session, image, f"first chunk over HTTP, {latency:g} ms", failure(error))
        return
    if not np.array_equal(np.asarray(chunk), _local_region(image.path, region)):
        session.results.mismatches.append(
            f"image {image.key}: the first chunk over HTTP differs from tifffile's"
        )
        session.log(f"  WARNING: image {image.key}: the first chunk over HTTP differs from tifffile's")
    best = min(runs, key=lambda run: run.total)
    best.runs = [run.total for run in runs]
    session.results.remote_open.append(best)
    session.log(
        f"  {image.key} {latency:g} ms: mount {best.mount:.3f} s ({best.open_requests} requests, "
        f"{best.open_bytes / MB:.1f} MB) + open {best.open:.3f} s + chunk {best.chunk:.3f} s "
        f"({best.chunk_requests} requests) = {best.total:.3f} s (runs: "
        + ", ".join(f"{total:.2f}" for total in best.runs)
        + " s)"
    )


def _local_region(path: Path, region: tuple[slice, ...]) -> np.ndarray:
    """The region of level 0 read from the local file by tifffile (the reference)."""
    import zarr

    with tifffile.TiffFile(path) as tif:
        store = tif.series[0].aszarr(level=0)
        return np.asarray(zarr.open_array(store, mode="r")[region])


def _full_reads(session: Session, image: Image, url: str, latency: float, counter: RequestCounter) -> None:
    """tifffile over fsspec, then tensorstore through a mount of the URL with an empty disk cache, then
    through a fresh mount with the same disk cache (the second pass). The requests of a mount's row include
    those of mounting it."""
    counter.since_last()
    _timed(session, image, latency, "fsspec_tifffile", partial(_fsspec_read, url), counter)
    disk_cache = session.workdir / f"disk-cache-{image.key}"
    shutil.rmtree(disk_cache, ignore_errors=True)
    cache_options = ["--disk-cache", str(disk_cache)] if _has_disk_cache() else []
    try:
        for tool, name in (("mount_tensorstore", "full"), ("disk_cache", "cached")):
            what = f"{REMOTE_TOOLS[tool]}, {latency:g} ms"
            if tool == "disk_cache" and not cache_options:
                _not_measured(session, image, what, "zarrfs mount has no --disk-cache")
                return
            counter.since_last()
            try:
                with _mount(session, image, url, f"{name}-{latency:g}ms", cache_options) as mount:
                    level0 = os.path.join(mount.mountpoint, "0")
                    _timed(session, image, latency, tool, partial(ts_read, level0), counter, mount.pid)
            except MountFailed as error:
                _not_measured(session, image, what, error.reason)
                return
            except READ_FAILED as error:
                _not_measured(session, image, what, failure(error))
                return
    finally:
        shutil.rmtree(disk_cache, ignore_errors=True)


def _timed(
    session: Session,
    image: Image,
    latency: float,
    tool: str,
    read: Callable[[], np.ndarray],
    counter: RequestCounter,
    pid: int | None = None,
) -> None:
    """One prepared, timed read, with the requests made since the counter's last call."""
    run = session.measure(image, f"{tool}@{latency:g}ms", read, pid)
    requests = counter.since_last()
    entry = RemoteRead(image.key, latency, tool, run.seconds, run.nbytes, requests.count, requests.nbytes)
    session.results.remote_reads.append(entry)
    session.log(
        f"  {image.key} {latency:g} ms {entry.label:<62} {entry.seconds:8.3f} s {entry.gbps:.2f} GB/s, "
        f"{entry.requests} requests ({entry.request_bytes / MB:.0f} MB)"
    )


def _fsspec_read(url: str) -> np.ndarray:
    """What a user of tifffile does with a URL: an fsspec file object (its default block cache)."""
    import fsspec

    with fsspec.open(url, "rb") as handle:
        return tifffile.imread(handle)


@functools.cache
def _has_disk_cache() -> bool:
    """Whether this zarrfs's mount command has the --disk-cache option (issue 15)."""
    command = [sys.executable, "-m", "zarrfs", "mount", "--help"]
    return "--disk-cache" in subprocess.run(command, capture_output=True, text=True, check=False).stdout
