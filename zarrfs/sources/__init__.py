"""Native-format readers behind one contract (base.py), and the registry that picks one (registry.py)."""

from __future__ import annotations

from zarrfs.sources.base import (
    CANONICAL_AXES,
    Channel,
    CodecConfig,
    ImageSource,
    Level,
    NativeBlocks,
    PhysicalSize,
    SeriesListing,
    SourceInfo,
)
from zarrfs.sources.registry import (
    DEFAULT_BLOCK_CACHE_BYTES,
    ENTRY_POINT_GROUP,
    REGISTRY,
    Location,
    Reader,
    open_source,
)

__all__ = [
    "CANONICAL_AXES",
    "DEFAULT_BLOCK_CACHE_BYTES",
    "ENTRY_POINT_GROUP",
    "REGISTRY",
    "Channel",
    "CodecConfig",
    "ImageSource",
    "Level",
    "Location",
    "NativeBlocks",
    "PhysicalSize",
    "Reader",
    "SeriesListing",
    "SourceInfo",
    "open_source",
]
