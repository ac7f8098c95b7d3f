"""What a user can choose about the served representation, parsed and checked in one place."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from zarrfs.core.formats import FORMATS, NGFF_VERSIONS
from zarrfs.errors import ZarrfsError
from zarrfs.sources.base import PhysicalSize
from zarrfs.sources.remote.disktier import disk_cache_options
from zarrfs.sources.remote.options import RemoteOptions, parse_storage_options
from zarrfs.units import UnitKind, udunits_name

DEFAULT_CACHE_BYTES = 512 * 2**20
# The layout served unless --ngff says otherwise: NGFF 0.4 on Zarr v2 is read by every client (Fiji, MoBIE and
# zarr-python 2 read no other), and one layout alone opens without zarr-python 3's warning that both exist.
DEFAULT_NGFF = "0.4"
DOWNSAMPLE_METHODS = ("mean", "nearest", "mode")

_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 10**3, "kb": 10**3, "kib": 2**10,
    "m": 10**6, "mb": 10**6, "mib": 2**20,
    "g": 10**9, "gb": 10**9, "gib": 2**30,
    "t": 10**12, "tb": 10**12, "tib": 2**40,
}  # fmt: skip
SIZE_SYNTAX = (
    "use a number and a unit: B, KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024), "
    "e.g. 512MiB"
)
MIN_CACHE_BYTES = 2**20
MAX_CACHE_BYTES = 2**50  # where the machine's memory is unknown
# A request may take this long before its client gets EIO: at least long enough to be met at all, and at most
# a day (any longer is a hang, not a slow read).
MIN_TIMEOUT_S = 0.01
MAX_TIMEOUT_S = 86400.0


@dataclass(frozen=True)
class ServeOptions:
    """Options shared by every front end (FUSE mount, in-process store, ``info``)."""

    source: Mapping[str, Any] = field(default_factory=dict)  # the reader's own options by name, as set
    # Physical pixel sizes the user sets, over what the source says (axis letter -> size).
    pixel_sizes: Mapping[str, PhysicalSize] = field(default_factory=dict)
    chunks: tuple[int, ...] | None = None  # right-aligned to the axes: (512, 512) sets y and x
    compressor: str = "none"
    clevel: int | None = None
    cache_bytes: int = DEFAULT_CACHE_BYTES
    ngff: tuple[str, ...] = (DEFAULT_NGFF,)  # layouts served side by side: 0.4 on Zarr v2, 0.5 on Zarr v3
    levels: int | None = None  # total resolution levels; None: down to one chunk per plane
    downsample: str = "mean"  # how computed levels are made
    shards: int | None = None  # Zarr v3 only: chunks per shard file along y and x
    passthrough: bool = True  # serve stored tiles unchanged where they already are the chunks
    remote: RemoteOptions = field(default_factory=RemoteOptions)  # how a source at a URL is reached


def human_bytes(size: float) -> str:
    """``1536`` -> ``1.5 KiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def parse_size(text: str, option: str = "") -> int:
    """Parse a byte size such as ``512MiB``, ``1.5GB`` or ``1048576``; fractions of a byte are dropped.
    ``option`` names the option it was given for, in the error."""
    what = f"size {text[:40]!r}" + (f" for {option}" if option else "")
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _SIZE_UNITS:
        raise ZarrfsError(f"invalid {what}: {SIZE_SYNTAX}")
    try:
        number = Fraction(match.group(1))  # exact: 1.1GB is 1100000000 bytes, not 1100000000.0000002
    except ValueError:  # more digits than Python converts (thousands): no size is that large anyway
        raise ZarrfsError(f"invalid {what}: {SIZE_SYNTAX}") from None
    return math.floor(number * _SIZE_UNITS[unit])


def memory_bytes() -> int | None:
    """This machine's physical memory, where the system says."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def parse_cache_size(value: str | int | float) -> int:
    """``--cache-size`` (``cache_size=`` in Python): a size as ``parse_size`` reads it, or a whole number of
    bytes, from MIN_CACHE_BYTES to the machine's memory. Less leaves no room for one chunk and its source
    tiles; more can only end in swapping or the out-of-memory killer once the cache fills."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        size = parse_size(value, "--cache-size")
    elif isinstance(value, int) and not isinstance(value, bool):
        size = value
    else:
        raise ZarrfsError(f"invalid size {value!r} for --cache-size: {SIZE_SYNTAX}")
    memory = memory_bytes()
    largest = memory or MAX_CACHE_BYTES
    if not MIN_CACHE_BYTES <= size <= largest:
        where = "this machine's memory" if memory else "the largest accepted"
        # (Python refuses to print an integer of thousands of digits.)
        shown = repr(value) if isinstance(value, str) or abs(value) < 2**64 else "beyond 2**64"
        raise ZarrfsError(
            f"invalid size {shown} for --cache-size: it must be from {human_bytes(MIN_CACHE_BYTES)} to "
            f"{human_bytes(largest)} ({where}); {SIZE_SYNTAX}"
        )
    return size


def parse_timeout(value: str | float) -> float:
    """``--timeout`` in seconds: finite, from MIN_TIMEOUT_S to MAX_TIMEOUT_S. There is no "no limit": a
    request that never ends would hang its client (and a libfuse thread) for ever."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if not MIN_TIMEOUT_S <= seconds <= MAX_TIMEOUT_S:  # NaN fails every comparison
        raise ZarrfsError(
            f"invalid --timeout {value!r}: use a number of seconds from {MIN_TIMEOUT_S:g} to "
            f"{MAX_TIMEOUT_S:g} (one day)"
        )
    return seconds


def parse_chunks(text: str) -> tuple[int, ...]:
    """Parse ``--chunks`` such as ``512,512`` or ``1,1,16,256,256``."""
    try:
        chunks = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ZarrfsError(f"invalid --chunks {text!r}: use comma-separated integers, e.g. 512,512") from None
    if not chunks or any(size < 1 for size in chunks):
        raise ZarrfsError(f"invalid --chunks {text!r}: every chunk size must be a positive integer")
    return chunks


_PIXEL_SIZE = re.compile(r"\s*([tczyx])\s*=\s*([0-9.eE+-]+)\s*([^\s].*?)?\s*")


def parse_pixel_sizes(values: str | Sequence[str] | Mapping[str, Any] | None) -> dict[str, PhysicalSize]:
    """``--pixel-size z=20``, ``x=0.5um``, ``t=2.5 s`` (repeated, or comma-separated): a positive size per
    axis, with a unit NGFF knows (micrometer if none is given for z, y, x; none for t)."""
    if not values:
        return {}
    if isinstance(values, Mapping):
        items = [f"{axis}={value}" for axis, value in values.items()]
    else:
        items = [
            part for value in ([values] if isinstance(values, str) else values) for part in value.split(",")
        ]
    sizes: dict[str, PhysicalSize] = {}
    for item in items:
        match = _PIXEL_SIZE.fullmatch(item)
        hint = "use AXIS=VALUE[UNIT] with AXIS one of t, z, y, x, e.g. z=20 or x=0.325um"
        if match is None or match.group(1) == "c":
            raise ZarrfsError(f"invalid --pixel-size {item.strip()!r}: {hint}")
        axis, number, unit = match.groups()
        try:
            value = float(number)
        except ValueError:
            raise ZarrfsError(f"invalid --pixel-size {item.strip()!r}: {hint}") from None
        if not (math.isfinite(value) and value > 0):
            raise ZarrfsError(f"invalid --pixel-size {item.strip()!r}: the size must be a positive number")
        kind: UnitKind = "time" if axis == "t" else "space"
        name = udunits_name(unit, kind) if unit else (None if axis == "t" else "micrometer")
        if unit and name is None:
            raise ZarrfsError(f"invalid --pixel-size {item.strip()!r}: unknown {kind} unit {unit!r}")
        sizes[axis] = PhysicalSize(value, name)
    return sizes


def serve_options(
    series: int | None = None,
    dataset: str | None = None,
    axes: str | None = None,
    pixel_size: str | Sequence[str] | Mapping[str, Any] | None = None,
    chunks: str | tuple[int, ...] | None = None,
    compressor: str = "none",
    clevel: int | None = None,
    cache_size: str | int | float = DEFAULT_CACHE_BYTES,
    ngff: str = DEFAULT_NGFF,
    levels: int | None = None,
    downsample: str = "mean",
    shards: int | None = None,
    passthrough: str | bool = "auto",
    sequence_list: str | os.PathLike[str] | None = None,
    sequence_axis: str | None = None,
    sequence_pattern: str | None = None,
    anon: bool = False,
    storage_options: Sequence[str] | Mapping[str, Any] | None = None,
    disk_cache: str | os.PathLike[str] | None = None,
    disk_cache_size: str | int | None = None,
) -> ServeOptions:
    """Build ServeOptions from what a user typed (strings, as on the command line) or from Python values."""
    if series is not None and series < 0:
        raise ZarrfsError(f"--series must be 0 or more, not {series}")
    if ngff not in ("all", *NGFF_VERSIONS):
        raise ZarrfsError(f"--ngff must be one of: all, {', '.join(NGFF_VERSIONS)}; not {ngff!r}")
    if levels is not None and levels < 1:
        raise ZarrfsError(f"--levels must be 1 or more, not {levels}")
    if downsample not in DOWNSAMPLE_METHODS:
        raise ZarrfsError(f"--downsample must be one of: {', '.join(DOWNSAMPLE_METHODS)}; not {downsample!r}")
    if shards is not None and shards < 1:
        raise ZarrfsError(f"--shards must be 1 or more, not {shards}")
    if shards is not None and not any(
        FORMATS[version].supports_sharding for version in (NGFF_VERSIONS if ngff == "all" else (ngff,))
    ):
        sharded = " or ".join(f"--ngff {name}" for name, fmt in FORMATS.items() if fmt.supports_sharding)
        raise ZarrfsError(f"--shards needs Zarr v3: add {sharded} (NGFF {ngff} is Zarr v2, without shards)")
    if passthrough not in ("auto", "off", True, False):
        raise ZarrfsError(f"--passthrough must be auto or off, not {passthrough!r}")
    return ServeOptions(
        # Options of one reader, passed on only when set: each reader refuses those it does not take.
        source={
            name: value
            for name, value in (
                ("series", series),
                ("dataset", dataset),
                ("axes", axes),
                ("sequence_list", None if sequence_list is None else os.path.abspath(sequence_list)),
                ("sequence_axis", sequence_axis),
                ("sequence_pattern", sequence_pattern),
            )
            if value is not None
        },
        pixel_sizes=parse_pixel_sizes(pixel_size),
        chunks=parse_chunks(chunks) if isinstance(chunks, str) else (tuple(chunks) if chunks else None),
        compressor=compressor,
        clevel=clevel,
        cache_bytes=parse_cache_size(cache_size),
        ngff=NGFF_VERSIONS if ngff == "all" else (ngff,),
        levels=levels,
        downsample=downsample,
        shards=shards,
        passthrough=passthrough in ("auto", True),
        remote=RemoteOptions(
            anon=bool(anon),
            storage=parse_storage_options(storage_options),
            **disk_cache_options(disk_cache, disk_cache_size),
        ),
    )
