"""The targets zarrfs is measured against, by identifier, with their thresholds; evaluate() turns a run's
results into one verdict per target that was measured."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial

from . import misses
from .images import MB, Image
from .results import TOOLS, RemoteOpen, RemoteRead, Repository, Row, Serving
from .servers import CONNECTIONS
from .session import Session


@dataclass(frozen=True)
class Goal:
    """Met by a figure of at least ``limit``, or at most with ``at_most`` (times, sizes)."""

    limit: float
    at_most: bool = False

    def met(self, value: float) -> bool:
        return value <= self.limit if self.at_most else value >= self.limit

    def __str__(self) -> str:
        return f"{'<=' if self.at_most else '>='} {self.limit:g}"


def at_least(limit: float) -> Goal:
    return Goal(limit)


def at_most(limit: float) -> Goal:
    return Goal(limit, at_most=True)


# Every target: <workload>.<image>[.<tool or variant>] -> its goal. A target is evaluated when its run was
# measured (see --only); its figure is named where the family starts.
GOALS: dict[str, Goal] = {
    # Full read through the mount with tensorstore, in multiples of tifffile.imread's speed: 0.8x for a
    # compressed source (both decode), 0.5x for an uncompressed one (tifffile only copies).
    "full_read.a.mount_tensorstore": at_least(0.8),
    "full_read.b.mount_tensorstore": at_least(0.5),
    "full_read.c.mount_tensorstore": at_least(0.8),
    # zarr-python over zarrfs.open_store, in multiples of zarr-python over tifffile's aszarr speed.
    "full_read.a.open_store": at_least(1.5),
    "full_read.b.open_store": at_least(1.5),
    "full_read.c.open_store": at_least(1.5),
    # Cold random chunk file (open + read + close) through the mount, p50 in milliseconds.
    "random_chunk.a.256_decoded": at_most(1.5),
    # Mount + zarr open + first chunk, in seconds ...
    "first_chunk.a": at_most(1.0),
    "first_chunk.b": at_most(1.0),
    "first_chunk.c": at_most(1.0),
    "first_chunk.d": at_most(1.0),
    # ... and how many times sooner that is than converting first.
    "first_chunk.a.vs_conversion": at_least(100),
    "first_chunk.b.vs_conversion": at_least(100),
    "first_chunk.c.vs_conversion": at_least(100),
    "first_chunk.d.vs_conversion": at_least(100),
    # Every level once, coarse to fine, in multiples of level 0 alone.
    "all_levels.a": at_most(1.35),
    "all_levels.b": at_most(1.35),
    "all_levels.c": at_most(1.35),
    # Daemon peak RSS beyond its --cache-size, in MB, reading at least 4x the cache size.
    "peak_rss.a": at_most(200),
    # Second full read through the mount (kernel page cache), GB/s.
    "second_pass.a.mount_tensorstore": at_least(2.0),
    "second_pass.b.mount_tensorstore": at_least(2.0),
    "second_pass.c.mount_tensorstore": at_least(2.0),
    # The other formats (issue 12): a full read through the mount in multiples of the format's own reader's
    # speed (h5py, nibabel, tensorstore on the store, tifffile.imread of the files: all decode) ...
    **{f"full_read.{key}.mount_tensorstore": at_least(0.8) for key in "eghijk"},
    # ... the first chunk, also of a 20 GiB HDF5 dataset (f) and of a 2,000-file sequence (l) ...
    **{f"first_chunk.{key}": at_most(1.0) for key in "efghijkl"},
    # ... and the daemon's peak RSS beyond the cache (MB), reading at least 4x the cache size.
    **{f"peak_rss.{key}": at_most(200) for key in "eghijk"},
    # HTTP (issue 13), zarrfs serve with wrk at 16 connections: one warm 512 KiB chunk, GB/s; one small
    # metadata document, requests/s; and a cold full read of level 0 with tensorstore over HTTP, in
    # multiples of the same read through a fresh FUSE mount.
    "http_chunk.w.zarrfs": at_least(1.0),
    "http_metadata.w.zarrfs": at_least(2000),
    "full_read.w.http_tensorstore": at_least(0.7),
    # A repository (issue 14): one mount of a tree of 20,000 small images in 200 directories. Mounting opens
    # no image (seconds); `ls` of a 1,000-entry directory is a readdir plus cheap stats (seconds); the
    # first read of an image node (.zattrs, .zarray and its chunk), median in milliseconds; the daemon's RSS
    # after `find` opened every image, MB beyond its --cache-size; a file written into the tree while
    # mounted is listed and read within 2 s (seconds).
    "repo_mount.r": at_most(1.0),
    "repo_ls.r": at_most(0.2),
    "repo_first_read.r": at_most(50),
    "repo_rss.r": at_most(150),
    "repo_visible.r": at_most(2.0),
    # Remote sources (issue 15), served by nginx, 20 ms added per request round trip: the first chunk of an
    # 80 GB sparse COG through a fresh mount of its URL (mount + open + chunk, seconds) ...
    "remote_first_chunk.u.20ms": at_most(1.0),
    # ... and a full read of an OME-TIFF through the mount (tensorstore) in multiples of tifffile.imread
    # over fsspec's file object, with no added latency and with 20 ms: zarrfs should win by concurrency.
    "remote_full_read.v.0ms": at_least(1.0),
    "remote_full_read.v.20ms": at_least(1.0),
}

# The peak-RSS target applies to reads of at least this many times the cache size.
RSS_CACHE_RATIO = 4


@dataclass
class Target:
    key: str  # a key of GOALS
    name: str
    image: str
    measured: str
    goal: str
    passed: bool
    explanation: list[str] = field(default_factory=list)
    profile: Callable[[], list[str]] | None = None  # where the time went, when missed


def evaluate(session: Session) -> list[Target]:
    """One verdict per measured target, with the measured reasons for each miss."""
    return [
        *_full_reads(session),
        *_random_chunks(session),
        *_first_chunks(session),
        *_all_levels(session),
        *_peak_rss(session),
        *_second_passes(session),
        *_http(session),
        *_repository(session),
        *_remote(session),
    ]


def _verdict(
    key: str,
    name: str,
    image: str,
    measured: str,
    goal: str,
    passed: bool,
    explain: Callable[[], list[str]] | None = None,
    profile: Callable[[], list[str]] | None = None,
) -> Target:
    """A target's verdict; a miss gets its explanation (worked out only then) and the re-run to profile."""
    if passed:
        return Target(key, name, image, measured, goal, passed)
    return Target(key, name, image, measured, goal, passed, explain() if explain else [], profile)


def _full_reads(session: Session) -> Iterator[Target]:
    results = session.results
    for image in session.images:
        reference = results.find(image.key, image.reference)
        ts_mount = results.find(image.key, "mount_tensorstore")
        key = f"full_read.{image.key}.mount_tensorstore"
        if reference and ts_mount and key in GOALS:
            ratio = reference.seconds / ts_mount.seconds
            yield _verdict(
                key,
                f"Full read through the mount (tensorstore) vs {reference_name(image)}",
                image.key,
                f"{ratio:.2f}x ({ts_mount.gbps:.2f} vs {reference.gbps:.2f} GB/s)",
                f"{GOALS[key]}x ({image.kind} source)",
                GOALS[key].met(ratio),
                partial(misses.explain_full_read, session, image),
                misses.profile_full_read(session, image),
            )
        aszarr = results.find(image.key, "aszarr")
        store = results.find(image.key, "open_store")
        key = f"full_read.{image.key}.open_store"
        if aszarr and store and key in GOALS:
            ratio = aszarr.seconds / store.seconds
            yield _verdict(
                key,
                "zarrfs.open_store + zarr-python vs zarr-python over tifffile aszarr",
                image.key,
                f"{ratio:.2f}x faster ({store.seconds:.2f} vs {aszarr.seconds:.2f} s)",
                f"{GOALS[key]}x faster",
                GOALS[key].met(ratio),
                partial(misses.explain_store, session, image),
                misses.profile_store(session, image),
            )


def reference_name(image: Image) -> str:
    return TOOLS[image.reference].removesuffix(" (in-process)")


def _random_chunks(session: Session) -> Iterator[Target]:
    for entry in session.results.random:
        key = f"random_chunk.{entry.image}.{entry.variant}"
        if key in GOALS:
            yield _verdict(
                key,
                "Cold random chunk p50, 256x256 deflate chunk through the mount",
                entry.image,
                f"{entry.cold_p50:.2f} ms (p99 {entry.cold_p99:.2f} ms)",
                f"{GOALS[key]} ms",
                GOALS[key].met(entry.cold_p50),
                partial(misses.explain_random, session),
                misses.profile_random(session, session.image(entry.image)),
            )


def _first_chunks(session: Session) -> Iterator[Target]:
    for entry in session.results.first_chunk:
        key = f"first_chunk.{entry.image}"
        if key not in GOALS:
            continue
        measured, goal, passed = f"{entry.total:.2f} s", f"{GOALS[key]} s", GOALS[key].met(entry.total)
        sooner = GOALS.get(f"{key}.vs_conversion")  # where the image is converted (TIFF)
        if sooner is not None:
            convert = session.results.conversion(entry.image)
            speedup = convert.seconds / entry.total if convert else math.nan
            estimated = " (conversion estimated)" if convert and convert.tool == "convert_estimated" else ""
            measured += f", {speedup:.0f}x sooner than converting{estimated}"
            goal += f" and {sooner}x sooner than converting"
            passed = passed and sooner.met(speedup)
        yield _verdict(
            key,
            "Time to first chunk (mount + open + first chunk)",
            entry.image,
            measured,
            goal,
            passed,
            partial(misses.explain_first_chunk, entry),
        )


def _all_levels(session: Session) -> Iterator[Target]:
    for entry in session.results.levels:
        key = f"all_levels.{entry.image}"
        if entry.explains_miss or key not in GOALS:
            continue
        ratio = entry.seconds / entry.level0
        image = session.image(entry.image)
        yield _verdict(
            key,
            "All levels read (coarse to fine) vs level 0 alone",
            entry.image,
            f"{ratio:.2f}x ({entry.seconds:.1f} vs {entry.level0:.1f} s)",
            f"{GOALS[key]}x",
            GOALS[key].met(ratio),
            partial(misses.explain_levels, session, image, entry),
            misses.profile_levels(session, image),
        )


def _peak_rss(session: Session) -> Iterator[Target]:
    for entry in session.results.rss:
        key = f"peak_rss.{entry.image}"
        if entry.ratio < RSS_CACHE_RATIO or key not in GOALS:
            continue
        over = GOALS[key]
        yield _verdict(
            key,
            f"Daemon peak RSS reading {entry.ratio:.1f}x the cache size",
            entry.image,
            f"{entry.peak / MB:.0f} MB (cache {entry.cache / MB:.0f} MB)",
            f"{'<=' if over.at_most else '>='} cache + {over.limit:g} MB = "
            f"{(entry.cache + over.limit * MB) / MB:.0f} MB",
            over.met((entry.peak - entry.cache) / MB),
            partial(misses.explain_rss, entry),
        )


def _second_passes(session: Session) -> Iterator[Target]:
    for entry in session.results.passes:
        key = f"second_pass.{entry.image}.mount_tensorstore"
        if key in GOALS:
            yield _verdict(
                key,
                "Second pass through the mount (tensorstore, kernel page cache)",
                entry.image,
                f"{entry.second:.2f} GB/s (first pass {entry.first:.2f} GB/s)",
                f"{GOALS[key]} GB/s",
                GOALS[key].met(entry.second),
                partial(misses.explain_second_pass, session, entry),
            )


def _served_figure(entry: Serving) -> float:
    """What a served document's target counts: GB/s of chunks, requests/s of metadata."""
    return entry.gbps if entry.document == "chunk" else entry.requests_per_s


def _http(session: Session) -> Iterator[Target]:
    results = session.results
    for document, unit in (("chunk", "GB/s"), ("metadata", "requests/s")):
        entry = results.served("zarrfs", document)
        key = f"http_{document}.{entry.image}.zarrfs" if entry else ""
        if entry is None or key not in GOALS:
            continue
        nginx = results.served("nginx", document)
        shown = ".2f" if document == "chunk" else ",.0f"
        versus = f"; nginx {_served_figure(nginx):{shown}}" if nginx else ""
        yield _verdict(
            key,
            f"zarrfs serve, warm {document} GETs, wrk {CONNECTIONS} connections",
            entry.image,
            f"{_served_figure(entry):{shown}} {unit} (p50 {entry.p50_ms:.2f} ms, p99 {entry.p99_ms:.2f} ms"
            f"{versus})",
            f"{GOALS[key]} {unit}",
            GOALS[key].met(_served_figure(entry)),
            _shared_cores,
        )
    for image in session.images:
        http = results.find(image.key, "http_tensorstore")
        fuse = results.find(image.key, "mount_tensorstore")
        key = f"full_read.{image.key}.http_tensorstore"
        if http and fuse and key in GOALS:
            ratio = fuse.seconds / http.seconds
            yield _verdict(
                key,
                "Cold full read over HTTP (tensorstore, zarrfs serve) vs through a FUSE mount",
                image.key,
                f"{ratio:.2f}x ({http.seconds:.2f} vs {fuse.seconds:.2f} s)",
                f"{GOALS[key]}x",
                GOALS[key].met(ratio),
                partial(_http_read_miss, results.find(image.key, "nginx_tensorstore")),
            )


def _shared_cores() -> list[str]:
    return [
        f"wrk (2 threads, {CONNECTIONS} connections) and the server share this machine's {os.cpu_count()} "
        "cores: the figure is the pair's, nginx's beside it is measured the same way"
    ]


def _http_read_miss(nginx: Row | None) -> list[str]:
    """The same cold read from nginx over the converted copy: what HTTP itself costs here."""
    if nginx is None:
        return ["no read from nginx to compare"]
    return [f"the same read from nginx over a converted copy: {nginx.seconds:.2f} s ({nginx.gbps:.2f} GB/s)"]


def _not_measured(session: Session, key: str, name: str, image: str, goal: str, about: str = "") -> Target:
    """A target whose figure this run could not take: a miss, with the reasons the run recorded (those that
    mention ``about``, e.g. a latency)."""
    reasons = [r for r in session.results.not_measured(image) if about in r] or ["no figure recorded"]
    return Target(key, name, image, "not measured", goal, False, reasons)


def _repository(session: Session) -> Iterator[Target]:
    for entry in session.results.repository:
        listed = f"{entry.listed:,}" if entry.listed else "large"
        figures = {  # family: (name, unit, figure); NaN where the run could not measure it
            "repo_mount": ("Mount of the repository tree", "s", entry.mount),
            "repo_ls": (f"ls of a {listed}-entry directory, cold", "s", entry.ls),
            "repo_first_read": (
                "First read of an image node (.zattrs + .zarray + chunk), median",
                "ms",
                entry.first_read_p50,
            ),
            "repo_rss": (
                "Daemon RSS after find opened every image, beyond the cache",
                "MB",
                (entry.rss - entry.cache) / MB if entry.rss else math.nan,
            ),
            "repo_visible": ("A file written while mounted: listed and read", "s", entry.visible),
        }
        for family, (name, unit, value) in figures.items():
            key = f"{family}.{entry.image}"
            goal = f"{GOALS[key]} {unit}"
            if math.isnan(value):
                yield _not_measured(session, key, name, entry.image, goal)
                continue
            shown = f"{value:.3f} {unit}" if unit == "s" else f"{value:.1f} {unit}"
            if family == "repo_rss":
                shown += f" ({entry.rss / MB:.0f} MB, cache {entry.cache / MB:.0f} MB)"
            if family == "repo_first_read":
                shown += f" ({len(entry.first_reads)} nodes, max {max(entry.first_reads):.1f} ms)"
            yield _verdict(
                key,
                name,
                entry.image,
                shown,
                goal,
                GOALS[key].met(value),
                partial(_repository_miss, entry, family),
            )


def _repository_miss(entry: Repository, family: str) -> list[str]:
    """The mount's other figures, as context; for a new file, the settle wait it includes."""
    found = f"{entry.found:,} images in {entry.find:.1f} s" if entry.found else "n/a"
    lines = [
        f"the same mount: mount {entry.mount:.3f} s, ls {entry.ls:.3f} s, ls -l {entry.ls_long:.3f} s, "
        f"find {found}, "
        f"daemon RSS {entry.rss / MB:.0f} MB with a {entry.cache / MB:.0f} MB cache"
    ]
    if family == "repo_visible":
        lines.append(
            "the time includes zarrfs's --settle wait (a file is shown once unchanged that long; see "
            "`zarrfs mount --help` for its default): a new file cannot appear sooner than --settle after its "
            "last write"
        )
    return lines


def _remote(session: Session) -> Iterator[Target]:
    results = session.results
    for image in session.images:
        if image.format != "remote":
            continue
        for key in (k for k in GOALS if k.split(".")[1] == image.key):
            family, _, variant = key.split(".")
            latency = float(variant.removesuffix("ms"))
            if family == "remote_first_chunk":
                name = f"Time to first chunk of a remote COG, {latency:g} ms added latency"
                goal = f"{GOALS[key]} s"
                entry = next(
                    (e for e in results.remote_open if (e.image, e.latency_ms) == (image.key, latency)), None
                )
                if entry is None:
                    yield _not_measured(session, key, name, image.key, goal, f", {latency:g} ms")
                    continue
                yield _verdict(
                    key,
                    name,
                    image.key,
                    f"{entry.total:.2f} s ({entry.open_requests} requests to open, {entry.chunk_requests} "
                    "for zarr open + chunk)",
                    goal,
                    GOALS[key].met(entry.total),
                    partial(_remote_open_miss, entry),
                )
            elif family == "remote_full_read":
                name = f"Full read over HTTP through the mount vs tifffile over fsspec, {latency:g} ms added"
                goal = f"{GOALS[key]}x"
                mount = results.remote_read(image.key, "mount_tensorstore", latency)
                fsspec = results.remote_read(image.key, "fsspec_tifffile", latency)
                if mount is None or fsspec is None:
                    yield _not_measured(session, key, name, image.key, goal, f", {latency:g} ms")
                    continue
                ratio = fsspec.seconds / mount.seconds
                yield _verdict(
                    key,
                    name,
                    image.key,
                    f"{ratio:.2f}x ({mount.seconds:.2f} vs {fsspec.seconds:.2f} s; {mount.requests} vs "
                    f"{fsspec.requests} requests)",
                    goal,
                    GOALS[key].met(ratio),
                    partial(_remote_read_miss, mount, fsspec),
                )


def _remote_open_miss(entry: RemoteOpen) -> list[str]:
    return [
        f"mount {entry.mount:.2f} s ({entry.open_requests} requests, {entry.open_bytes / MB:.1f} MB), "
        f"zarr open {entry.open:.2f} s, chunk {entry.chunk:.2f} s ({entry.chunk_requests} requests for "
        f"both); {entry.latency_ms:g} ms per round trip"
    ]


def _remote_read_miss(mount: RemoteRead, fsspec: RemoteRead) -> list[str]:
    return [
        f"{entry.label}: {entry.requests:,} requests, {entry.request_bytes / MB:,.0f} MB, "
        f"{entry.gbps:.2f} GB/s"
        for entry in (mount, fsspec)
    ]
