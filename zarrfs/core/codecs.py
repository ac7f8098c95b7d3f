"""Output compressors: one name on the command line -> the byte streams chunks are encoded in.

Every encoding is deterministic, which exact file sizes rely on: a chunk evicted from the cache and encoded
again keeps its size and bytes. Which stream each Zarr format serves, and how its metadata names it, is the
format's choice (zarrfs/core/formats.py).
"""

from __future__ import annotations

import dataclasses
import gzip
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from zarrfs.errors import ZarrfsError

COMPRESSOR_NAMES = ("none", "blosc-lz4", "blosc-zstd", "zstd", "zlib")

# Defaults favour serving speed over ratio: chunks are encoded on demand while a client waits.
DEFAULT_LEVELS = {"blosc-lz4": 5, "blosc-zstd": 3, "zstd": 1, "zlib": 1}
LEVEL_RANGES = {"blosc-lz4": (0, 9), "blosc-zstd": (0, 9), "zstd": (-7, 22), "zlib": (0, 9)}


@dataclass(frozen=True)
class Compressor:
    """The user's choice: a name from COMPRESSOR_NAMES and its level (None for 'none')."""

    name: str
    level: int | None


def make_compressor(name: str, level: int | None = None) -> Compressor:
    if name not in COMPRESSOR_NAMES:
        raise ZarrfsError(f"unknown compressor {name!r}; choose one of: {', '.join(COMPRESSOR_NAMES)}")
    if name == "none":
        if level is not None:
            raise ZarrfsError("--clevel needs a compressor other than 'none'")
        return Compressor("none", None)
    if level is None:
        level = DEFAULT_LEVELS[name]
    low, high = LEVEL_RANGES[name]
    if not low <= level <= high:
        raise ZarrfsError(f"--clevel {level} is out of range for {name} ({low} to {high})")
    return Compressor(name, level)


@dataclass(frozen=True)
class Encoding:
    """How one array's chunks are encoded (see zarrfs/core/formats.py for each format's choice).

    ``metadata`` is what the format's array document says of it: the v2 ``compressor`` value or the v3
    bytes-to-bytes codec (None: raw chunks). ``key`` names the byte stream, so that formats share cached
    chunks where their bytes are the same.
    """

    name: str
    metadata: dict[str, Any] | None
    key: str
    _encode: Callable[[np.ndarray], bytes] | None

    def described_as(self, metadata: dict[str, Any]) -> Encoding:
        """The same byte stream under another format's codec metadata (the cache key stays the stream's)."""
        return dataclasses.replace(self, metadata=metadata)

    @property
    def is_raw(self) -> bool:
        return self._encode is None

    def encode(self, pixels: np.ndarray) -> bytes:
        """Encode a C-contiguous little-endian chunk (its item size is blosc's shuffle unit)."""
        return pixels.tobytes() if self._encode is None else self._encode(pixels)


def numcodecs_encoding(name: str, config: dict[str, Any]) -> Encoding:
    """Chunks encoded by the numcodecs codec ``config``, described by that config (Zarr v2's form)."""
    # Imported only when a compressor needs it: it is a sixth of the start-up imports of every mount.
    import numcodecs

    # numcodecs' blosc uses its own threads only when called from the main thread; chunks are encoded in
    # worker threads, so its process-wide threading setting is left as the user has it.
    codec = numcodecs.get_codec(dict(config))
    return Encoding(name, config, json.dumps(config), lambda pixels: bytes(codec.encode(pixels)))


def blosc_config(name: str, level: int | None) -> dict[str, Any]:
    """``blosc-<cname>`` with byte shuffle and automatic block size, in Zarr v2's minimal form."""
    return {"id": "blosc", "cname": name.removeprefix("blosc-"), "clevel": level, "shuffle": 1}


def blosc_encoding(name: str, level: int) -> Encoding:
    """Chunks encoded as ``blosc_config`` says."""
    return numcodecs_encoding(name, blosc_config(name, level))


def gzip_encoding(level: int) -> Encoding:
    """The gzip container (Zarr v3's ``gzip`` codec)."""
    metadata = {"name": "gzip", "configuration": {"level": level}}
    # A fixed header time: numcodecs' GZip stamps the current time, so encodes of one chunk would differ.
    return Encoding(
        "zlib",
        metadata,
        json.dumps(metadata),
        lambda pixels: gzip.compress(pixels.tobytes(), compresslevel=level, mtime=0),
    )


def raw_encoding() -> Encoding:
    return Encoding("none", None, "raw", None)
