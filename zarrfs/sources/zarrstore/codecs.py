"""The codecs an array's metadata names, and whether tensorstore reads them: an array it cannot read is
refused at open with one line naming the codec, not at the first chunk."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from zarrfs.errors import SourceError
from zarrfs.sources.zarrstore.nodes import N5, ZARR2, Node

# What tensorstore's zarr, zarr3 and n5 drivers decode.
READABLE = {
    "Zarr v2": frozenset({"blosc", "zlib", "gzip", "zstd", "bz2"}),
    "Zarr v3": frozenset({"bytes", "transpose", "gzip", "zstd", "blosc", "crc32c", "sharding_indexed"}),
    "N5": frozenset({"raw", "gzip", "bzip2", "xz", "blosc", "zstd"}),
}


def _v3_codecs(codecs: Any) -> Iterator[str]:
    for codec in codecs or ():
        name = codec if isinstance(codec, str) else codec.get("name") if isinstance(codec, Mapping) else None
        yield str(name)
        if name == "sharding_indexed" and isinstance(codec, Mapping):
            yield from _v3_codecs((codec.get("configuration") or {}).get("codecs"))


def codec_names(node: Node) -> list[str]:
    """The codecs of an array, in order (a v2 array's filters first, then its compressor)."""
    metadata = node.metadata
    if node.format == N5:
        compression = metadata.get("compression") or {"type": "raw"}
        return [str(compression.get("type")) if isinstance(compression, Mapping) else str(compression)]
    if node.format == ZARR2:
        stages = [*(metadata.get("filters") or ()), metadata.get("compressor")]
        return [
            str(stage.get("id")) if isinstance(stage, Mapping) else str(stage) for stage in stages if stage
        ]
    return list(_v3_codecs(metadata.get("codecs")))


def check_readable(node: Node) -> None:
    """Refuse, in one line, an array whose codecs tensorstore cannot decode (v2 filters included)."""
    names = codec_names(node)
    if node.format == ZARR2 and node.metadata.get("filters"):
        filters = ", ".join(names[: len(node.metadata["filters"])])
        raise SourceError(
            f"{node.format} array {node.name} in {node.root} uses filters ({filters}), "
            "which zarrfs cannot read"
        )
    unreadable = [name for name in names if name not in READABLE[node.format]]
    if unreadable:
        readable = ", ".join(
            sorted(READABLE[node.format] - {"bytes", "transpose", "sharding_indexed", "crc32c"})
        )
        raise SourceError(
            f"{node.format} array {node.name} in {node.root} uses codec {unreadable[0]!r}, "
            f"which zarrfs cannot read (it reads {readable})"
        )
