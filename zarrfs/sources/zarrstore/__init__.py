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
from zarrfs.sources.zarrstore.storage import LocalFiles, StoreFiles

__all__ = ["ZarrReader", "ZarrSource"]


class ZarrReader(Reader):
    name: ClassVar[str] = "Zarr/N5"
    options: ClassVar[Mapping[str, str]] = {
        "dataset": "the array or image group in the store, e.g. /raw or /images/0 (default: the only one)",
        "axes": "names of the array's dimensions in stored order (N5: x first), e.g. zyx",
    }

    def claims(self, location: Location) -> bool:
        return location.is_directory and has_metadata(store_files(location))

    def open(self, location: Location, options: Mapping[str, Any], block_cache_bytes: int) -> ImageSource:
        return ZarrSource(location.path, options, store_files(location))


def store_files(location: Location) -> StoreFiles:
    """The files of the store at ``location``: a local directory, or a prefix at a URL."""
    if location.remote is None:
        return LocalFiles(location.path)
    from zarrfs.sources.zarrstore.remote import RemoteFiles

    state = location.remote.reader_state
    if "zarr" not in state:  # made once: the documents read to claim the store are those it opens with
        state["zarr"] = RemoteFiles(location.remote.url, location.remote.options)
    files = state["zarr"]
    assert isinstance(files, RemoteFiles)
    return files
