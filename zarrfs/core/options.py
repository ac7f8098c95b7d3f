"""What a user can choose about the served representation, parsed and checked in one place."""

from __future__ import annotations

import re
from dataclasses import dataclass

from zarrfs.errors import ZarrfsError

DEFAULT_CACHE_BYTES = 512 * 2**20

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

    series: int = 0
    chunks: tuple[int, ...] | None = None  # right-aligned to the axes: (512, 512) sets y and x
    compressor: str = "none"
    clevel: int | None = None
    cache_bytes: int = DEFAULT_CACHE_BYTES


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
    series: int = 0,
    chunks: str | tuple[int, ...] | None = None,
    compressor: str = "none",
    clevel: int | None = None,
    cache_size: str | int = DEFAULT_CACHE_BYTES,
) -> ServeOptions:
    """Build ServeOptions from what a user typed (strings, as on the command line) or from Python values."""
    if series < 0:
        raise ZarrfsError(f"--series must be 0 or more, not {series}")
    return ServeOptions(
        series=series,
        chunks=parse_chunks(chunks) if isinstance(chunks, str) else (tuple(chunks) if chunks else None),
        compressor=compressor,
        clevel=clevel,
        cache_bytes=parse_size(cache_size) if isinstance(cache_size, str) else int(cache_size),
    )
