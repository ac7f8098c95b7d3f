"""Output compressors: one name on the command line -> how chunks are encoded and described, per Zarr format.

Zarr v2 and v3 share the byte streams of blosc and zstd; ``zlib`` is served as zlib on v2 and as gzip on v3
(v3 has no standard zlib codec). Every encoding is deterministic, which exact file sizes rely on: a chunk
evicted from the cache and encoded again keeps its size and bytes.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from zarrfs.errors import ZarrfsError
from zarrfs.sources.base import NativeBlocks

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
    """How one array's chunks are encoded in one Zarr format.

    ``metadata`` is the v2 ``compressor`` value or the v3 bytes-to-bytes codec (None: raw chunks). ``key``
    names the byte stream, so both formats share cached chunks where their bytes are the same.
    """

    name: str
    metadata: dict[str, Any] | None
    key: str
    _encode: Callable[[np.ndarray], bytes] | None

    @property
    def is_raw(self) -> bool:
        return self._encode is None

    def encode(self, pixels: np.ndarray) -> bytes:
        """Encode a C-contiguous little-endian chunk (its item size is blosc's shuffle unit)."""
        return pixels.tobytes() if self._encode is None else self._encode(pixels)


def _numcodecs_encoder(config: dict[str, Any]) -> Callable[[np.ndarray], bytes]:
    # Imported only when a compressor needs it: it is a sixth of the start-up imports of every mount.
    import numcodecs
    import numcodecs.blosc

    # We run many chunk encodes in parallel ourselves; blosc's own threads would only compete with them.
    numcodecs.blosc.use_threads = False
    codec = numcodecs.get_codec(dict(config))
    return lambda pixels: bytes(codec.encode(pixels))


def _gzip_encoder(level: int) -> Callable[[np.ndarray], bytes]:
    # A fixed header time: numcodecs' GZip stamps the current time, so encodes of one chunk would differ.
    return lambda pixels: gzip.compress(pixels.tobytes(), compresslevel=level, mtime=0)


def make_encoding(compressor: Compressor, zarr_format: int, dtype: np.dtype) -> Encoding:
    name, level = compressor.name, compressor.level
    if name == "none":
        return Encoding(name, None, "raw", None)
    assert level is not None
    if name.startswith("blosc-"):
        cname = name.removeprefix("blosc-")
        # Byte shuffle and automatic block size: minimal v2 JSON; the v3 spec wants every key spelled out.
        config = {"id": "blosc", "cname": cname, "clevel": level, "shuffle": 1}
        v3 = {
            "cname": cname,
            "clevel": level,
            "shuffle": "shuffle",
            "typesize": dtype.itemsize,
            "blocksize": 0,
        }
        metadata = config if zarr_format == 2 else {"name": "blosc", "configuration": v3}
        return Encoding(name, metadata, json.dumps(config), _numcodecs_encoder(config))
    if name == "zstd":
        config = {"id": "zstd", "level": level}
        v3 = {"name": "zstd", "configuration": {"level": level, "checksum": False}}
        return Encoding(
            name, config if zarr_format == 2 else v3, json.dumps(config), _numcodecs_encoder(config)
        )
    if zarr_format == 2:
        config = {"id": "zlib", "level": level}
        return Encoding(name, config, json.dumps(config), _numcodecs_encoder(config))
    v3 = {"name": "gzip", "configuration": {"level": level}}
    return Encoding(name, v3, json.dumps(v3), _gzip_encoder(level))


def native_encoding(blocks: NativeBlocks, zarr_format: int, compressor: Compressor) -> bool:
    """Whether the stored blocks are exactly what the chosen compressor serves in this Zarr format, so they
    can be passed through unchanged: the served codec metadata decodes any stream of that codec, whatever
    level it was written with."""
    served = {2: {"none": "none", "zlib": "zlib", "zstd": "zstd"}, 3: {"none": "none", "zstd": "zstd"}}
    return served[zarr_format].get(blocks.codec_id) == compressor.name
