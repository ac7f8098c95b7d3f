"""What a user can choose about the served representation, parsed and checked in one place."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from zarrfs.core.formats import FORMATS, NGFF_VERSIONS
from zarrfs.errors import ZarrfsError

DEFAULT_CACHE_BYTES = 512 * 2**20
DOWNSAMPLE_METHODS = ("mean", "nearest", "mode")

_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 10**3, "kb": 10**3, "kib": 2**10,
    "m": 10**6, "mb": 10**6, "mib": 2**20,
    "g": 10**9, "gb": 10**9, "gib": 2**30,
    "t": 10**12, "tb": 10**12, "tib": 2**40,
}  # fmt: skip


@dataclass(frozen=True)
class ServeOptions:
    """Options shared by every front end (FUSE mount, in-process store, ``info``)."""

    source: Mapping[str, Any] = field(default_factory=dict)  # the reader's own options by name, as set
    chunks: tuple[int, ...] | None = None  # right-aligned to the axes: (512, 512) sets y and x
    compressor: str = "none"
    clevel: int | None = None
    cache_bytes: int = DEFAULT_CACHE_BYTES
    ngff: tuple[str, ...] = NGFF_VERSIONS  # layouts served side by side: 0.4 on Zarr v2, 0.5 on Zarr v3
    levels: int | None = None  # total resolution levels; None: down to one chunk per plane
    downsample: str = "mean"  # how computed levels are made
    shards: int | None = None  # Zarr v3 only: chunks per shard file along y and x
    passthrough: bool = True  # serve stored tiles unchanged where they already are the chunks


def parse_size(text: str) -> int:
    """Parse a byte size such as ``512MiB``, ``2G`` or ``1048576``."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _SIZE_UNITS:
        raise ZarrfsError(f"invalid size {text!r}: use a number with an optional unit, e.g. 512MiB or 2GB")
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


def parse_chunks(text: str) -> tuple[int, ...]:
    """Parse ``--chunks`` such as ``512,512`` or ``1,1,16,256,256``."""
    try:
        chunks = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ZarrfsError(f"invalid --chunks {text!r}: use comma-separated integers, e.g. 512,512") from None
    if not chunks or any(size < 1 for size in chunks):
        raise ZarrfsError(f"invalid --chunks {text!r}: every chunk size must be a positive integer")
    return chunks


def serve_options(
    series: int | None = None,
    chunks: str | tuple[int, ...] | None = None,
    compressor: str = "none",
    clevel: int | None = None,
    cache_size: str | int = DEFAULT_CACHE_BYTES,
    ngff: str = "all",
    levels: int | None = None,
    downsample: str = "mean",
    shards: int | None = None,
    passthrough: str | bool = "auto",
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
        sharded = ", ".join(version for version, fmt in FORMATS.items() if fmt.supports_sharding)
        raise ZarrfsError(
            f"--shards needs Zarr v3: use --ngff {sharded} or all (NGFF {ngff} is Zarr v2, unsharded)"
        )
    if passthrough not in ("auto", "off", True, False):
        raise ZarrfsError(f"--passthrough must be auto or off, not {passthrough!r}")
    return ServeOptions(
        source={} if series is None else {"series": series},
        chunks=parse_chunks(chunks) if isinstance(chunks, str) else (tuple(chunks) if chunks else None),
        compressor=compressor,
        clevel=clevel,
        cache_bytes=parse_size(cache_size) if isinstance(cache_size, str) else int(cache_size),
        ngff=NGFF_VERSIONS if ngff == "all" else (ngff,),
        levels=levels,
        downsample=downsample,
        shards=shards,
        passthrough=passthrough in ("auto", True),
    )
