"""Output compressors: one name on the command line -> a numcodecs codec and its minimal Zarr v2 JSON."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numcodecs
import numcodecs.blosc
from numcodecs.abc import Codec

from zarrfs.errors import ZarrfsError

# We run many chunk encodes in parallel ourselves; blosc's own threads would only compete with them.
numcodecs.blosc.use_threads = False

COMPRESSOR_NAMES = ("none", "blosc-lz4", "blosc-zstd", "zstd", "zlib")

# Defaults favour serving speed over ratio: chunks are encoded on demand while a client waits.
DEFAULT_LEVELS = {"blosc-lz4": 5, "blosc-zstd": 3, "zstd": 1, "zlib": 1}
LEVEL_RANGES = {"blosc-lz4": (0, 9), "blosc-zstd": (0, 9), "zstd": (-7, 22), "zlib": (0, 9)}


@dataclass(frozen=True)
class OutputCodec:
    """How chunk bytes are encoded; ``codec`` is None for raw (uncompressed) chunks."""

    name: str
    level: int | None
    codec: Codec | None
    v2_config: dict[str, Any] | None  # the ".zarray" "compressor" value, minimal: no default-valued keys

    def encode(self, raw: bytes) -> bytes:
        return raw if self.codec is None else bytes(self.codec.encode(raw))


def make_output_codec(name: str, level: int | None = None) -> OutputCodec:
    if name not in COMPRESSOR_NAMES:
        raise ZarrfsError(f"unknown compressor {name!r}; choose one of: {', '.join(COMPRESSOR_NAMES)}")
    if name == "none":
        if level is not None:
            raise ZarrfsError("--clevel needs a compressor other than 'none'")
        return OutputCodec("none", None, None, None)
    if level is None:
        level = DEFAULT_LEVELS[name]
    low, high = LEVEL_RANGES[name]
    if not low <= level <= high:
        raise ZarrfsError(f"--clevel {level} is out of range for {name} ({low} to {high})")
    config: dict[str, Any]
    if name.startswith("blosc-"):
        # A fixed byte shuffle and automatic block size: the encoding is deterministic for a given chunk,
        # which exact file sizes rely on (a chunk evicted and encoded again must keep its size).
        config = {"id": "blosc", "cname": name.removeprefix("blosc-"), "clevel": level, "shuffle": 1}
    elif name == "zstd":
        config = {"id": "zstd", "level": level}
    else:
        config = {"id": "zlib", "level": level}
    return OutputCodec(name, level, numcodecs.get_codec(dict(config)), config)
