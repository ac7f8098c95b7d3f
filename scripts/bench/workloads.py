"""The workloads, each over one image: time to first chunk, full reads (with the daemon's peak RSS and the
second pass), every level coarse to fine, random chunk files, the conversion users would run instead; for
the other formats their own reader against the mount, and for HTTP zarrfs serve against nginx."""

from __future__ import annotations

import math
import os
import shutil
import time
from functools import partial

import numpy as np
import tifffile

from zarrfs.core.options import parse_size

from . import remote, repository
from .chunkfiles import center_chunk_region, chunk_grid, chunk_path, latencies_ms, levels_of, plain_read_all
from .host import cpu_seconds
from .images import GIB, MB, Image
from .readers import (
    aszarr_read,
    convert_with_ome_zarr,
    core_read_all,
    dask_read,
    level_1_is_computed,
    reference_read,
    served_chunks,
    store_read,
    tifffile_read,
    ts_read,
    ts_read_http,
    write_raw_copy,
    zarr_read,
)
from .results import AllLevels, FirstChunk, Passes, PeakRss, RandomChunks, Serving
from .servers import CONNECTIONS, nginx_server, wrk, zarrfs_server
from .session import DEFAULT_CACHE, Measured, Session, percentile, runs_note, warm_image
from .synth import TILE, sparse_block_start
from .targets import GOALS


def first_chunk(session: Session, image: Image) -> None:
    """Mount + zarr open + the center chunk of level 0, on a fresh mount; the best of --repeats."""
    import zarr

    runs = []
    for _ in range(session.settings.repeats):
        warm_image(image)
        with session.mount(image, "ttfc") as mount:
            start = time.perf_counter()
            array = zarr.open_group(mount.mountpoint, mode="r", zarr_format=3)["0"]
            assert isinstance(array, zarr.Array)
            opened = time.perf_counter() - start
            region = center_chunk_region(array.shape, array.chunks)
            array[region]
            first = time.perf_counter() - start - opened
        runs.append(FirstChunk(image.key, mount.seconds, opened, first, mount.seconds + opened + first))
    best = min(runs, key=lambda run: run.total)
    best.runs = [run.total for run in runs]
    session.results.first_chunk.append(best)
    session.log(
        f"  {image.key} first chunk: mount {best.mount:.3f} s + open {best.open:.3f} s + "
        f"chunk {best.chunk:.3f} s = {best.total:.3f} s (runs: "
        + ", ".join(f"{total:.2f}" for total in best.runs)
        + " s)"
    )


def full_reads(session: Session, image: Image) -> None:
    """Level 0 whole: in-process tools, then through fresh mounts (tensorstore with the daemon's CPU and
    peak RSS and a second pass from the page cache, zarr-python, dask)."""
    path = image.path
    session.best_of(image, "tifffile", lambda: tifffile_read(path))
    cores = os.cpu_count() or 1
    if cores > tifffile.TIFF.MAXWORKERS:
        # tifffile decodes with half the cores by default; what it does with all of them, for reference.
        session.best_of(image, "tifffile_all_cores", lambda: tifffile_read(path, maxworkers=cores))
    session.best_of(image, "aszarr", lambda: aszarr_read(path))
    session.best_of(image, "open_store", lambda: store_read(path))
    core_runs = []
    for _ in range(session.settings.repeats):
        session.prepare(image)
        start = time.perf_counter()
        _, count = core_read_all(path)
        core_runs.append(Measured(time.perf_counter() - start, image.nbytes, 0.0, 0.0))
    session.record(
        image,
        "full",
        "core",
        min(run.seconds for run in core_runs),
        image.nbytes,
        f"{count} chunk files made, no FUSE, no client; " + runs_note(core_runs),
    )
    _tensorstore_through_mounts(session, image)
    with session.mount(image, "zarr") as mount:
        level0 = os.path.join(mount.mountpoint, "0")
        session.timed_read(image, "full", "mount_zarr", lambda: zarr_read(level0))
    with session.mount(image, "dask") as mount:
        level0 = os.path.join(mount.mountpoint, "0")
        session.timed_read(image, "full", "mount_dask", lambda: dask_read(level0))


def format_reads(session: Session, image: Image) -> None:
    """Another format's volume whole: its own reader in-process, then tensorstore through fresh mounts."""
    session.best_of(image, image.reference, partial(reference_read, image))
    _tensorstore_through_mounts(session, image, second_pass=False)


def _tensorstore_through_mounts(session: Session, image: Image, second_pass: bool = True) -> None:
    """Tensorstore through fresh mounts: first passes (daemon RSS and CPU), then on the last mount the
    page-cache passes."""
    cache = image.cache or DEFAULT_CACHE
    options = ["--cache-size", cache] if image.cache else []
    runs: list[Measured] = []
    cpus, peaks, starts = [], [], []
    repeats = session.settings.repeats
    for repeat in range(repeats):
        with session.mount(image, "ts", options) as mount:
            level0 = os.path.join(mount.mountpoint, "0")
            cpu_before = cpu_seconds(mount.pid) if mount.pid else 0.0
            runs.append(session.measure(image, "mount_tensorstore", partial(ts_read, level0), mount.pid))
            cpus.append((cpu_seconds(mount.pid) - cpu_before) if mount.pid else 0.0)
            if second_pass and repeat == repeats - 1:
                second = session.best_of(
                    image, "mount_tensorstore_page_cache", partial(ts_read, level0), workload="2nd pass"
                )
                plain_seconds, plain_bytes = plain_read_all(mount.mountpoint)
                plain = session.record(
                    image, "2nd pass", "mount_plain_page_cache", plain_seconds, plain_bytes
                )
        peaks.append(mount.peak_rss)
        starts.append(mount.start_rss)
    best = min(range(len(runs)), key=lambda i: runs[i].seconds)
    run = runs[best]
    first = session.record(
        image,
        "full",
        "mount_tensorstore",
        run.seconds,
        run.nbytes,
        f"daemon CPU {cpus[best]:.1f} s ({cpus[best] / run.seconds:.1f} cores), client CPU "
        f"{run.client_cpu:.1f} s; " + runs_note(runs),
    )
    session.results.cpu[image.key] = (cpus[best], run.client_cpu)
    cache_bytes = parse_size(cache)
    rss = PeakRss(image.key, cache_bytes, image.nbytes / cache_bytes, max(starts), max(peaks))
    session.results.rss.append(rss)
    session.log(
        f"  {image.key} daemon RSS: {rss.start / MB:.0f} MB at start, peak {rss.peak / MB:.0f} MB, "
        f"cache {cache_bytes / MB:.0f} MB"
    )
    if second_pass:
        session.results.passes.append(Passes(image.key, first.gbps, second.gbps, plain.gbps))


def all_levels(session: Session, image: Image) -> None:
    """Every level once, coarse to fine as a viewer zooms in, vs level 0 alone."""
    level0 = session.results.find(image.key, "mount_tensorstore")
    entry = _read_all_levels(session, image, [])
    entry.level0 = level0.seconds if level0 else math.nan
    session.results.levels.append(entry)
    goal = GOALS.get(f"all_levels.{image.key}")
    if goal is not None and not goal.met(entry.seconds / entry.level0) and entry.computed:
        # Coarse to fine, the coarsest computed level needs all of level 0 before level 0 is read: with a
        # cache smaller than level 0 it is made twice. Measure the same order with a cache that holds it
        # and the level below (3/4 of the cache holds chunks; an LRU cache just too small for a sequential
        # read would keep none of it).
        cache = f"{math.ceil(image.nbytes * 2 / GIB * 10) / 10}GiB"
        bigger = _read_all_levels(session, image, ["--cache-size", cache])
        bigger.level0 = entry.level0
        bigger.explains_miss = True
        session.results.levels.append(bigger)


def _read_all_levels(session: Session, image: Image, options: list[str]) -> AllLevels:
    cache = options[options.index("--cache-size") + 1] if "--cache-size" in options else DEFAULT_CACHE
    with session.mount(image, "levels", options) as mount:
        names = levels_of(mount.mountpoint)
        per_level = []
        level_bytes = []
        session.prepare(image, factor=2.7)
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
    session.record(
        image,
        "levels",
        "mount_tensorstore_levels",
        seconds,
        nbytes,
        label=f"tensorstore, all {len(names)} levels coarse to fine, cache {cache}",
    )
    return AllLevels(
        image.key,
        len(names),
        cache,
        seconds,
        per_level,
        level_1_is_computed(image.path),
        nbytes / level_bytes[-1],
    )


def random_chunks(session: Session, image: Image) -> None:
    """Open + read + close of random chunk files on a fresh mount (cold), then again shuffled (warm)."""
    variants: list[tuple[str, list[str]]] = [("default", [])]
    if image.key == "a":
        variants = [
            ("256_decoded", ["--chunks", "256,256"]),
            ("256_passthrough", ["--chunks", "256,256", "--compressor", "zlib", "--ngff", "0.4"]),
            *variants,
        ]
    for variant, options in variants:
        rng = np.random.default_rng(42)
        with session.mount(image, "random", options) as mount:
            v2 = "--ngff" in options
            grid, chunks, chunk_bytes = chunk_grid(mount.mountpoint, "0", v2)
            indices = _sample(session, image, grid, chunks, rng)
            paths = [chunk_path(mount.mountpoint, "0", index, v2) for index in indices]
            buffer = bytearray(chunk_bytes + 4096)
            cold = latencies_ms(paths, buffer)
            rng.shuffle(paths)
            warm = latencies_ms(paths, buffer)
        entry = RandomChunks(
            image.key,
            variant,
            chunk_bytes,
            len(paths),
            percentile(cold, 50),
            percentile(cold, 99),
            percentile(warm, 50),
            percentile(warm, 99),
            options,
        )
        session.results.random.append(entry)
        session.log(
            f"  {image.key} random {entry.label}: cold p50 {entry.cold_p50:.2f} ms p99 "
            f"{entry.cold_p99:.2f} ms, warm p50 {entry.warm_p50:.3f} ms p99 {entry.warm_p99:.3f} ms"
        )
    if image.key == "a":
        _core_chunk_latency(session, image)


def _sample(
    session: Session, image: Image, grid: tuple[int, ...], chunks: tuple[int, ...], rng: np.random.Generator
) -> list[tuple[int, ...]]:
    """Distinct random chunk indices; for the sparse image half inside its written block, half anywhere
    (almost all never written)."""
    total = math.prod(grid)
    count = min(session.sizes.random_chunks, total)
    if image.key != "d":
        return [
            tuple(int(i) for i in np.unravel_index(f, grid)) for f in rng.choice(total, count, replace=False)
        ]
    block = image.params["block"]
    first_pixel = sparse_block_start(image.shape[-1], block) * TILE
    last_pixel = first_pixel + block * TILE - 1
    low = [first_pixel // c for c in chunks[-2:]]
    high = [last_pixel // c for c in chunks[-2:]]
    half = count // 2
    inside = {
        (int(rng.integers(low[0], high[0] + 1)), int(rng.integers(low[1], high[1] + 1))) for _ in range(half)
    }
    anywhere = {
        tuple(int(i) for i in np.unravel_index(f, grid)) for f in rng.choice(total, half, replace=False)
    }
    return sorted(inside | anywhere, key=lambda _: rng.random())


def _core_chunk_latency(session: Session, image: Image) -> None:
    """The cold 256x256 chunk in-process (no FUSE): the share of the latency zarrfs's core needs."""
    from zarrfs.core import open_dataset
    from zarrfs.core.options import serve_options

    dataset = open_dataset(image.path, serve_options(chunks=(256, 256), ngff="0.5"))  # v3 keys below
    try:
        array = dataset.layouts[-1].arrays[0]
        rng = np.random.default_rng(42)
        indices = [
            tuple(int(rng.integers(0, n)) for n in array.grid) for _ in range(session.sizes.random_chunks)
        ]
        latencies = []
        for index in indices:
            start = time.perf_counter()
            dataset.tree.read_file("0/c/" + "/".join(map(str, index)))
            latencies.append((time.perf_counter() - start) * 1e3)
    finally:
        dataset.close()
    session.results.random.append(
        RandomChunks(
            image.key,
            "256_core",
            256 * 256 * 2,
            len(indices),
            percentile(latencies, 50),
            percentile(latencies, 99),
            math.nan,
            math.nan,
            [],
        )
    )


def conversion(session: Session, image: Image) -> None:
    """ome-zarr-py converting the image (timed), then the converted copy read back by the clients."""
    out = session.converted_dir / (image.path.name.split(".")[0] + ".ome.zarr")
    shutil.rmtree(out, ignore_errors=True)
    chunks = served_chunks(image.path)
    session.prepare(image)
    start = time.perf_counter()
    convert_with_ome_zarr(image, out, chunks)
    seconds = time.perf_counter() - start
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    session.record(
        image,
        "convert",
        "convert",
        seconds,
        image.nbytes,
        f"{size / MB:.0f} MB written, chunks {list(chunks)}, zstd",
    )
    if image.key == "a":
        session.results.convert_rate = seconds / image.nbytes
    level0 = out / "s0"
    session.timed_read(image, "full", "converted_tensorstore", lambda: ts_read(str(level0)), warm=level0)
    session.timed_read(image, "full", "converted_zarr", lambda: zarr_read(str(level0)), warm=level0)
    if image.key == "a":
        _client_ceiling(session, image, str(level0))
    if not session.settings.keep_converted:
        shutil.rmtree(out, ignore_errors=True)


def _client_ceiling(session: Session, image: Image, converted_level0: str) -> None:
    """Tensorstore reading an uncompressed local Zarr copy from the page cache: what the client itself
    can do on this machine, without FUSE (explains the second-pass figure)."""
    raw = session.converted_dir / "raw-copy.zarr"
    shutil.rmtree(raw, ignore_errors=True)
    write_raw_copy(ts_read(converted_level0), raw, served_chunks(image.path))
    ts_read(str(raw))  # a first read, as the mount's second pass follows a first one
    session.timed_read(image, "2nd pass", "local_raw_tensorstore", lambda: ts_read(str(raw)), warm=raw)
    shutil.rmtree(raw, ignore_errors=True)


def estimate_conversions(session: Session) -> None:
    """The virtual image is not converted (50 GiB of pixels, ~30 min here): its conversion time is
    estimated from the measured rate of image a (seconds per byte of pixels)."""
    rate = session.results.convert_rate
    for image in session.images:
        if image.full_read or image.format != "tiff" or rate is None:
            continue
        session.record(
            image,
            "convert",
            "convert_estimated",
            rate * image.nbytes,
            image.nbytes,
            "not run: 50 GiB of pixels",
        )


# Served to both HTTP servers: 512x512 uint16 chunks of 512 KiB, the Zarr v3 layout only.
HTTP_OPTIONS = ["--chunks", "512,512", "--ngff", "0.5"]
CHUNK_KEY = "0/c/1/1"
METADATA_KEY = "0/zarr.json"


def http_serving(session: Session, image: Image) -> None:
    """zarrfs serve against nginx over a copy of the same tree: a cold full read of level 0 with tensorstore
    over HTTP (against the same read through a fresh FUSE mount), then wrk on one warm chunk and on one small
    metadata document. The servers listen on 127.0.0.1 and are stopped after their rows."""
    copy = session.converted_dir / f"{image.key}-copy"
    shutil.rmtree(copy, ignore_errors=True)
    with session.mount(image, "fuse", HTTP_OPTIONS) as mount:
        level0 = os.path.join(mount.mountpoint, "0")
        session.cold_read(image, "mount_tensorstore", partial(ts_read, level0), mount.pid)
        shutil.copytree(mount.path, copy)  # the converted copy a user would put behind a web server
    with zarrfs_server(image.source, [*HTTP_OPTIONS, "--cache-size", "2GiB"], session.log_dir) as server:
        pid = server.process.pid if server.process else None
        session.cold_read(image, "http_tensorstore", partial(ts_read_http, f"{server.url}/0/"), pid)
        _load(session, image, "zarrfs", server.url, copy)
    with nginx_server(copy, session.workdir / "nginx", session.log_dir) as server:
        session.cold_read(image, "nginx_tensorstore", partial(ts_read_http, f"{server.url}/0/"))
        _load(session, image, "nginx", server.url, copy)
    shutil.rmtree(copy, ignore_errors=True)


def _load(session: Session, image: Image, server: str, url: str, copy: os.PathLike[str]) -> None:
    for document, key in (("chunk", CHUNK_KEY), ("metadata", METADATA_KEY)):
        load = wrk(f"{url}/{key}", session.sizes.wrk_seconds)
        nbytes = os.path.getsize(os.path.join(copy, key))
        entry = Serving(image.key, server, document, nbytes, load.requests_per_s, load.p50_ms, load.p99_ms)
        session.results.serving.append(entry)
        session.log(
            f"  {image.key} {entry.label}, {document} ({nbytes:,} bytes), wrk {CONNECTIONS} connections: "
            f"{entry.requests_per_s:,.0f} requests/s = {entry.gbps:.2f} GB/s, p50 {entry.p50_ms:.2f} ms, "
            f"p99 {entry.p99_ms:.2f} ms"
        )


def run_image(session: Session, image: Image) -> None:
    """Every workload that applies to ``image``, in the order that keeps each one's caches apart."""
    if image.format == "repository":
        repository.run(session, image)
        return
    warm_image(image)
    if image.format == "remote":
        remote.run(session, image)
        return
    if image.format == "http":
        http_serving(session, image)
        return
    first_chunk(session, image)
    if image.format != "tiff":
        if image.full_read:
            format_reads(session, image)
        return
    if image.full_read:
        full_reads(session, image)
        all_levels(session, image)
    random_chunks(session, image)
    if image.full_read:
        conversion(session, image)


def describe(image: Image) -> str:
    return (
        f"image {image.key}: {image.title} ({image.source.name}, "
        f"{image.disk_bytes / MB:.0f} MB on disk, {image.nbytes / GIB:.2f} GiB pixels)"
    )
