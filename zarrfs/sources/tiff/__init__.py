"""TIFF, BigTIFF, OME-TIFF and ImageJ TIFF files as an image source in canonical ``tczyx`` order.

tifffile parses the file structure once, at open. Pixel reads then bypass tifffile's file handle, which
serializes every seek + read under one lock: each read is an ``os.pread`` on our own read-only descriptor
followed by the page's own decode function, so any number of threads read and decode at the same time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from zarrfs.sources.base import ImageSource
from zarrfs.sources.registry import Location, Reader
from zarrfs.sources.tiff.checks import TIFF_SIGNATURES, is_tiff_header
from zarrfs.sources.tiff.source import TiffSource

__all__ = ["TIFF_SIGNATURES", "TiffReader", "TiffSource", "is_tiff_header"]


class TiffReader(Reader):
    name: ClassVar[str] = "TIFF"
    options: ClassVar[Mapping[str, str]] = {
        "series": "which image series of a multi-series file to serve (default 0)"
    }

    def claims(self, location: Location) -> bool:
        return location.is_file and is_tiff_header(location.header)

    def open(self, location: Location, options: Mapping[str, Any], block_cache_bytes: int) -> ImageSource:
        return TiffSource(
            location.path,
            options.get("series", 0),
            segment_cache_bytes=location.reader_cache_bytes(block_cache_bytes),
            file=location.remote_file(block_cache_bytes),
        )
