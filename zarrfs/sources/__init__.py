"""Native-format readers behind one interface, and the registry that picks one for a file."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from zarrfs.errors import SourceError
from zarrfs.sources.base import (
    CANONICAL_AXES,
    Channel,
    ImageSource,
    Level,
    NativeBlocks,
    PhysicalSize,
    SourceInfo,
)

__all__ = [
    "CANONICAL_AXES",
    "Channel",
    "ImageSource",
    "Level",
    "NativeBlocks",
    "PhysicalSize",
    "SourceInfo",
    "open_source",
]

HEADER_BYTES = 16


@dataclass(frozen=True)
class Reader:
    """A registered format: ``sniff`` looks at the first bytes, ``open(path, series, block_cache_bytes)``
    builds the source, which may keep decoded blocks larger than a chunk in a cache of that size."""

    name: str
    sniff: Callable[[bytes], bool]
    open: Callable[[str, int, int], ImageSource]


def _tiff_reader() -> Reader:
    from zarrfs.sources.tiff import TiffSource, is_tiff_header

    def open_tiff(path: str, series: int, block_cache_bytes: int) -> ImageSource:
        return TiffSource(path, series, segment_cache_bytes=block_cache_bytes)

    return Reader("TIFF", is_tiff_header, open_tiff)


READERS: list[Callable[[], Reader]] = [_tiff_reader]


def _read_header(path: str) -> bytes:
    """Check the path is a readable, non-empty regular file and return its first bytes."""
    if not os.path.exists(path):
        raise SourceError(f"source not found: {path}")
    if os.path.isdir(path):
        raise SourceError(f"source is a directory, not an image file: {path}")
    if not os.path.isfile(path):
        raise SourceError(f"source is not a regular file: {path}")
    try:
        with open(path, "rb") as handle:
            header = handle.read(HEADER_BYTES)
    except PermissionError:
        raise SourceError(f"no permission to read source: {path}") from None
    except OSError as error:
        raise SourceError(f"cannot read source {path}: {error.strerror}") from None
    if not header:
        raise SourceError(f"source is empty (0 bytes): {path}")
    return header


DEFAULT_BLOCK_CACHE_BYTES = 128 * 2**20


def open_source(
    path: str | os.PathLike[str], series: int = 0, block_cache_bytes: int = DEFAULT_BLOCK_CACHE_BYTES
) -> ImageSource:
    """Open ``path`` with the reader whose format matches its first bytes."""
    path = os.path.abspath(os.fspath(path))
    header = _read_header(path)
    for make_reader in READERS:
        reader = make_reader()
        if reader.sniff(header):
            return reader.open(path, series, block_cache_bytes)
    supported = ", ".join(make_reader().name for make_reader in READERS)
    raise SourceError(f"not a supported image format (supported: {supported}): {path}")
