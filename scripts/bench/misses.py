"""Why a target was missed: the figures of the same run that explain it, and py-spy profiles of the daemon
(or this process) re-running the workload."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from functools import partial

import numpy as np

from zarrfs.core.options import parse_size

from .chunkfiles import chunk_grid, chunk_path, levels_of, read_chunk_file
from .host import startup_seconds
from .images import GIB, MB, Image
from .profiling import Profile
from .readers import store_read, ts_read
from .results import TOOLS, AllLevels, FirstChunk, Passes, PeakRss
from .session import DEFAULT_CACHE, Session


def explain_full_read(session: Session, image: Image) -> list[str]:
    results = session.results
    core = results.find(image.key, "core")
    ts_mount = results.find(image.key, "mount_tensorstore")
    imread = results.find(image.key, image.reference)
    reader = TOOLS[image.reference].removesuffix(" (in-process)")
    lines = []
    if core and ts_mount and imread:
        lines.append(
            f"making every chunk in-process (decode + assembly, no FUSE) takes {core.seconds:.2f} s "
            f"= {imread.seconds / core.seconds:.2f}x {reader}'s speed; FUSE transfer and the "
            f"client add {ts_mount.seconds - core.seconds:.2f} s on top"
        )
    if ts_mount and imread and image.key in results.cpu:
        daemon, client = results.cpu[image.key]
        cores = os.cpu_count() or 1
        floor = (daemon + client) / cores
        lines.append(
            f"daemon and client together used {daemon + client:.1f} CPU seconds ({daemon:.1f} + "
            f"{client:.1f}): on {cores} cores no schedule finishes in less than {floor:.2f} s = "
            f"{imread.seconds / floor:.2f}x {reader}'s speed"
        )
    if ts_mount and ts_mount.note:
        lines.append(ts_mount.note)
    return lines


def explain_store(session: Session, image: Image) -> list[str]:
    results = session.results
    core = results.find(image.key, "core")
    store = results.find(image.key, "open_store")
    aszarr = results.find(image.key, "aszarr")
    if core and store and aszarr:
        return [
            f"zarrfs makes the chunks in {core.seconds:.2f} s; zarr-python over the store spends "
            f"{store.seconds - core.seconds:.2f} s more (its per-chunk work, copies, thread hops); "
            f"even with none of that it would be {aszarr.seconds / core.seconds:.2f}x faster than aszarr"
        ]
    return []


def explain_random(session: Session) -> list[str]:
    core = session.results.random_variant("256_core")
    through = session.results.random_variant("256_decoded")
    passthrough = session.results.random_variant("256_passthrough")
    lines = []
    if core and through:
        lines.append(
            f"the same chunks made in-process (read + decode + copy, no FUSE): p50 "
            f"{core.cold_p50:.2f} ms; FUSE lookups/open/read/release add "
            f"{through.cold_p50 - core.cold_p50:.2f} ms"
        )
    if passthrough:
        lines.append(
            "served as stored deflate bytes (pass-through, no decode): cold p50 "
            f"{passthrough.cold_p50:.2f} ms"
        )
    return lines


def explain_first_chunk(entry: FirstChunk) -> list[str]:
    command, daemon = startup_seconds()
    return [
        f"mount {entry.mount:.2f} s, zarr open {entry.open:.2f} s, "
        f"first chunk {entry.chunk:.2f} s (best of " + ", ".join(f"{t:.2f}" for t in entry.runs) + " s)",
        f"of the mount, starting Python with its imports takes {command:.2f} s for the zarrfs "
        f"command and {daemon:.2f} s for the daemon it starts (best of 5 each)",
    ]


def explain_levels(session: Session, image: Image, entry: AllLevels) -> list[str]:
    per_level = ", ".join(f"{name}: {seconds:.1f} s" for name, seconds in entry.per_level)
    lines = [f"per level, coarse to fine: {per_level}"]
    if not entry.computed:
        lines.append(
            f"the levels are stored: reading all of them decodes and moves "
            f"{entry.data_vs_level0:.2f}x the data of level 0, each block once"
        )
    core = session.results.find(image.key, "core")
    if entry.computed and core and image.nbytes > parse_size(DEFAULT_CACHE):
        bound = (core.seconds + entry.level0) / entry.level0
        lines.append(
            f"level 0 ({image.nbytes / GIB:.1f} GiB) does not fit in the {DEFAULT_CACHE} cache, and "
            f"coarse to fine the coarsest level needs all of it first: level 0 is made twice, so even "
            f"with free coarser levels the ratio is at least (making level 0 in-process "
            f"{core.seconds:.1f} s + reading it {entry.level0:.1f} s) / {entry.level0:.1f} s "
            f"= {bound:.2f}x"
        )
    for bigger in session.results.levels:
        if bigger.image == image.key and bigger.explains_miss:
            lines.append(
                f"with --cache-size {bigger.cache} (holds level 0): {bigger.seconds:.1f} s = "
                f"{bigger.seconds / bigger.level0:.2f}x level 0 alone"
            )
    return lines


def explain_rss(entry: PeakRss) -> list[str]:
    return [
        f"daemon RSS right after mount (imports, parsed source): {entry.start / MB:.0f} MB; peak - start = "
        f"{(entry.peak - entry.start) / MB:.0f} MB for a {entry.cache / MB:.0f} MB cache"
    ]


def explain_second_pass(session: Session, entry: Passes) -> list[str]:
    lines = [f"plain open/read/close of every chunk file in the second pass: {entry.plain:.2f} GB/s"]
    ceiling = session.results.find(entry.image, "local_raw_tensorstore")
    if ceiling:
        lines.append(
            f"tensorstore reading an uncompressed local Zarr copy from the page cache (no FUSE): "
            f"{ceiling.gbps:.2f} GB/s"
        )
    return lines


# -- profiles: each returns the re-run to profile, called only when profiles are wanted


def _profile_daemon(
    session: Session, image: Image, name: str, options: list[str], body: Callable[[str], None]
) -> list[str]:
    with session.mount(image, "profile", options) as mount:
        if mount.pid is None:
            return ["daemon not found"]
        session.prepare(image, factor=2.7)  # as for the measured runs
        profile = Profile(mount.pid, session.profile_dir / f"{image.key}-{name}.txt")
        try:
            body(mount.mountpoint)
        finally:
            profile.stop()
    return profile.summarize()


def _read_level0(mountpoint: str) -> None:
    ts_read(os.path.join(mountpoint, "0"))


def _read_all_levels(mountpoint: str) -> None:
    for name in reversed(levels_of(mountpoint)):
        ts_read(os.path.join(mountpoint, name))


def _read_random_chunks(count: int, mountpoint: str) -> None:
    grid, _, chunk_bytes = chunk_grid(mountpoint, "0")
    buffer = bytearray(chunk_bytes + 4096)
    rng = np.random.default_rng(1)
    total = math.prod(grid)
    for flat in rng.choice(total, min(total, count), replace=False):
        index = tuple(int(i) for i in np.unravel_index(flat, grid))
        read_chunk_file(chunk_path(mountpoint, "0", index), buffer)


def profile_full_read(session: Session, image: Image) -> Callable[[], list[str]]:
    return partial(_profile_daemon, session, image, "full-read", [], _read_level0)


def profile_levels(session: Session, image: Image) -> Callable[[], list[str]]:
    return partial(_profile_daemon, session, image, "levels", [], _read_all_levels)


def profile_random(session: Session, image: Image) -> Callable[[], list[str]]:
    body = partial(_read_random_chunks, 4 * session.sizes.random_chunks)
    return partial(_profile_daemon, session, image, "random", ["--chunks", "256,256"], body)


def profile_store(session: Session, image: Image) -> Callable[[], list[str]]:
    def run() -> list[str]:
        session.prepare(image)
        profile = Profile(os.getpid(), session.profile_dir / f"{image.key}-store.txt")
        try:
            store_read(image.path)
        finally:
            profile.stop()
        return profile.summarize()

    return run
