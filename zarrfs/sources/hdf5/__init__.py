"""HDF5 files as an image source: Imaris, BigDataViewer, 3D-PLI and plain datasets, in canonical ``tczyx``.

h5py reads the file structure once, at open, with HDF5's file locking off. Pixel reads bypass h5py, which
serialises every call under one global lock: stored chunks are read with ``os.pread`` and decoded in the
calling thread (see stored.py and filters.py).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, ClassVar

from zarrfs.sources.base import ImageSource
from zarrfs.sources.pixelfile import SourceFile
from zarrfs.sources.registry import Location, Reader

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# HDF5 looks for its superblock at 0, then 512, 1024, 2048, ... (after a user block of that size).
FIRST_USER_BLOCK = 512


def is_hdf5(path: str, header: bytes, file: SourceFile | None = None) -> bool:
    """True if the file starts with the HDF5 signature, or has it after a user block. ``file``: where the
    bytes are, when not in the local file ``path``."""
    if header.startswith(HDF5_SIGNATURE):
        return True
    if file is not None:
        offset = FIRST_USER_BLOCK
        while offset + len(HDF5_SIGNATURE) <= file.size:
            if file.pread(len(HDF5_SIGNATURE), offset) == HDF5_SIGNATURE:
                return True
            offset *= 2
        return False
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            offset = FIRST_USER_BLOCK
            while offset + len(HDF5_SIGNATURE) <= size:
                if os.pread(handle.fileno(), len(HDF5_SIGNATURE), offset) == HDF5_SIGNATURE:
                    return True
                offset *= 2
    except OSError:
        return False
    return False


class Hdf5Reader(Reader):
    name: ClassVar[str] = "HDF5"
    options: ClassVar[Mapping[str, str]] = {
        "dataset": "the dataset to serve (its path in the file), for files that are not Imaris, "
        "BigDataViewer or 3D-PLI or hold several datasets",
        "axes": "the dataset's axis names in stored order (e.g. zyx, czyx, xyz) where its attributes do "
        "not say",
    }

    def claims(self, location: Location) -> bool:
        if not location.is_file:
            return False
        return is_hdf5(
            location.path, location.header, None if location.remote is None else location.remote.file()
        )

    def open(self, location: Location, options: Mapping[str, Any], block_cache_bytes: int) -> ImageSource:
        from zarrfs.sources.hdf5.source import Hdf5Source

        return Hdf5Source(
            location.path,
            options.get("dataset"),
            options.get("axes"),
            chunk_cache_bytes=location.reader_cache_bytes(block_cache_bytes),
            file=location.remote_file(block_cache_bytes),
        )
