"""The repository rows (issue 14): one mount of a tree of many small images, lazy and live. Mount time, a
cold `ls -l` of the largest directory, the first read of single image nodes, `find MNT -name .zattrs` over
the whole tree (opens every image), the daemon's RSS after that, and how soon a file written into the tree
while mounted is listed and read. Steps a zarrfs without the feature cannot take are recorded as not
measured, with the reason."""

from __future__ import annotations

import contextlib
import math
import os
import subprocess
import time
from pathlib import Path

import tifffile

from zarrfs.core.options import parse_size

from .chunkfiles import chunk_grid, chunk_path, read_chunk_file
from .formats import repository_layout, write_small_image
from .host import current_rss_bytes
from .images import MB, Image
from .mounts import READ_FAILED, Mount, MountFailed, failure
from .results import Repository, Unmeasured
from .session import Session

# The mount's cache: small, so that the RSS target (cache + 150 MB) says something about the rest.
CACHE = "64MiB"
# Image nodes whose first read is timed, spread over the tree.
FIRST_READS = 9
# How long a new file may take to appear before the row says it did not.
VISIBLE_LIMIT = 30.0


def node_name(relative: str) -> str:
    """The node a source file appears as: the image extension replaced by .ome.zarr (issue 14)."""
    for suffix in (".nii.gz", ".tif"):
        if relative.endswith(suffix):
            return relative.removesuffix(suffix) + ".ome.zarr"
    raise ValueError(f"not an image of the tree: {relative}")


def run(session: Session, image: Image) -> None:
    params = image.params
    layout = repository_layout(params["images"], params["dirs"], params["listed"])
    entry = Repository(image.key, len(layout), params["dirs"], parse_size(CACHE))
    session.results.repository.append(entry)
    for name in layout:  # the sources in the page cache, as for every other row
        (image.path / name).read_bytes()
    try:
        # Zarr v2 only (the default layout), so that find lists one .zattrs per image node.
        with Mount(
            image.path, session.mnt_dir / f"{image.key}-repo", ["--cache-size", CACHE], session.log_dir
        ) as mount:
            entry.mount = mount.seconds
            session.log(f"  {image.key} mount of {len(layout):,} images: {mount.seconds:.3f} s")
            _steps(session, image, mount, layout, entry)
    except MountFailed as error:
        _not_measured(session, image, "repository mount", error.reason)
    except READ_FAILED as error:
        _not_measured(session, image, "repository rows", failure(error))


def _not_measured(session: Session, image: Image, what: str, reason: str) -> None:
    session.results.unmeasured.append(Unmeasured(image.key, what, reason))
    session.log(f"  {image.key} {what}: not measured: {reason}")


def _steps(session: Session, image: Image, mount: Mount, layout: list[str], entry: Repository) -> None:
    listed_dir = os.path.dirname(layout[0])
    expected = sorted(
        os.path.basename(node_name(name)) for name in layout if name.startswith(listed_dir + "/")
    )
    entry.ls, names = _ls(mount.path / listed_dir)
    entry.listed = len(names)
    if names != expected:
        _mismatch(session, image, f"ls of {listed_dir} listed {len(names)} entries, expected {len(expected)}")
    entry.ls_long, long_names = _ls(mount.path / listed_dir, long=True)
    if long_names != expected:
        _mismatch(session, image, f"ls -l of {listed_dir} listed {len(long_names)} entries")
    session.log(
        f"  {image.key} ls of {entry.listed:,} entries: {entry.ls:.3f} s (cold), "
        f"then ls -l {entry.ls_long:.3f} s"
    )

    entry.first_reads = [
        _first_read(session, image, mount.path, name) for name in _spread(layout, listed_dir, FIRST_READS)
    ]
    session.log(
        f"  {image.key} first read of a node (ms): median {entry.first_read_p50:.1f}, all "
        + ", ".join(f"{ms:.1f}" for ms in entry.first_reads)
    )

    entry.find, entry.found = _find(mount.path)
    if entry.found != len(layout):
        _mismatch(session, image, f"find listed {entry.found} image nodes, the tree has {len(layout)}")
    if mount.pid is not None:
        entry.rss = current_rss_bytes(mount.pid)
    session.log(
        f"  {image.key} find -name .zattrs: {entry.found:,} nodes in {entry.find:.1f} s "
        f"({entry.found / entry.find:,.0f} images/s); daemon RSS then {entry.rss / MB:.0f} MB"
    )

    entry.visible = _new_file_visible(session, image, mount.path, layout)
    shown = f"{entry.visible:.2f} s" if math.isfinite(entry.visible) else f"not within {VISIBLE_LIMIT:.0f} s"
    session.log(f"  {image.key} a new file listed and read: {shown}")


def _mismatch(session: Session, image: Image, what: str) -> None:
    session.results.mismatches.append(f"image {image.key}: {what}")
    session.log(f"  WARNING: image {image.key}: {what}")


def _ls(directory: Path, long: bool = False) -> tuple[float, list[str]]:
    """`ls` as a user runs it (readdir), or `ls -l` (and a lookup and stat of every entry), timed; the names
    it listed."""
    start = time.perf_counter()
    result = subprocess.run(
        ["ls", *(["-l"] if long else []), "--color=never", str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - start
    names = sorted(line.split()[-1] for line in result.stdout.splitlines() if not line.startswith("total"))
    return seconds, names


def _spread(layout: list[str], skip_dir: str, count: int) -> list[str]:
    """``count`` TIFF images evenly spread over the tree, outside the listed directory."""
    candidates = [name for name in layout if name.endswith(".tif") and not name.startswith(skip_dir + "/")]
    step = max(1, len(candidates) // count)
    return candidates[step // 2 :: step][:count]


def _first_read(session: Session, image: Image, mnt: Path, name: str) -> float:
    """Milliseconds to read a node's .zattrs, its level's .zarray and its one chunk, cold; the chunk is
    checked against tifffile's pixels of the source file."""
    node = str(mnt / node_name(name))
    start = time.perf_counter()
    with open(os.path.join(node, ".zattrs"), "rb") as attributes:
        attributes.read()
    grid, _, chunk_bytes = chunk_grid(node, "0", v2=True)
    buffer = bytearray(chunk_bytes + 4096)
    size = read_chunk_file(chunk_path(node, "0", (0,) * len(grid), v2=True), buffer)
    milliseconds = (time.perf_counter() - start) * 1e3
    expected = tifffile.imread(image.path / name)
    if math.prod(grid) != 1 or bytes(buffer[:size]) != expected.tobytes():
        _mismatch(session, image, f"the chunk of {name} differs from tifffile's pixels")
    return milliseconds


def _find(mnt: Path) -> tuple[float, int]:
    """`find MNT -name .zattrs`, timed; the image nodes it listed (their root .zattrs)."""
    start = time.perf_counter()
    result = subprocess.run(
        ["find", str(mnt), "-name", ".zattrs"], capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - start
    roots = [line for line in result.stdout.splitlines() if os.path.dirname(line).endswith(".ome.zarr")]
    return seconds, len(roots)


def _new_file_visible(session: Session, image: Image, mnt: Path, layout: list[str]) -> float:
    """Seconds from the end of writing a new TIFF into the tree (in place, as a scanner writes) until its
    node is listed and its chunk reads as the file's pixels; NaN if not within VISIBLE_LIMIT. The file is
    removed again (the tree is reused by later runs)."""
    name = os.path.join(os.path.dirname(layout[-1]), f"new_{os.getpid()}.tif")
    source = image.path / name
    node = str(mnt / node_name(name))
    try:
        write_small_image(source, seed=len(layout))
        expected = tifffile.imread(source).tobytes()
        written = time.perf_counter()
        buffer = bytearray(len(expected) + 4096)
        while (elapsed := time.perf_counter() - written) < VISIBLE_LIMIT:
            with contextlib.suppress(OSError, ValueError, KeyError):
                if os.path.basename(node) in os.listdir(os.path.dirname(node)):
                    grid, _, _ = chunk_grid(node, "0", v2=True)
                    size = read_chunk_file(chunk_path(node, "0", (0,) * len(grid), v2=True), buffer)
                    if bytes(buffer[:size]) == expected:
                        return elapsed
            time.sleep(0.01)
        return math.nan
    finally:
        source.unlink(missing_ok=True)
