"""Zarr v2, Zarr v3 and N5 stores (a directory) as an image source: OME-Zarr images (NGFF 0.4 and 0.5,
sharded or not) with their levels, plain arrays and groups, N5 datasets and multiscale groups.

Named ``zarrstore`` so that ``import zarr`` inside zarrfs still finds zarr-python.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from zarrfs.sources.base import ImageSource
from zarrfs.sources.registry import Location, Reader
from zarrfs.sources.zarrstore.nodes import has_metadata
from zarrfs.sources.zarrstore.source import ZarrSource

__all__ = ["ZarrReader", "ZarrSource"]


class ZarrReader(Reader):
    name: ClassVar[str] = "Zarr/N5"
    options: ClassVar[Mapping[str, str]] = {
        "dataset": "the array or image group in the store, e.g. /raw or /images/0 (default: the only one)",
        "axes": "names of the array's dimensions in stored order (N5: x first), e.g. zyx",
    }

    def claims(self, location: Location) -> bool:
        return location.is_directory and has_metadata(location.path)

    def open(self, location: Location, options: Mapping[str, Any], block_cache_bytes: int) -> ImageSource:
        return ZarrSource(location.path, options)
