"""NIfTI-1 and NIfTI-2 single files (``.nii``, and ``.nii.gz`` read with seek points) as an image source.

nibabel parses the header only; voxels are read by offset, never the whole volume: rows by ``os.pread`` from
a ``.nii``, from the decompressed stream of a ``.nii.gz`` through seek points kept in memory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, ClassVar

from zarrfs.sources.base import ImageSource
from zarrfs.sources.nifti.gzindex import GZIP_MAGIC, gunzip_prefix
from zarrfs.sources.nifti.signature import SIGNATURE_BYTES, nifti_version
from zarrfs.sources.registry import Location, Reader

__all__ = ["NiftiReader", "is_nifti"]


def is_nifti(location: Location) -> bool:
    """Whether ``location`` is a single-file NIfTI header, gzipped or not: decided from its first bytes
    (for gzip, the first ones that decompress)."""
    header = location.header
    if header.startswith(GZIP_MAGIC) and location.remote is not None:
        header = gunzip_prefix(location.remote.file().pread, SIGNATURE_BYTES)
    elif header.startswith(GZIP_MAGIC):
        with open(location.path, "rb") as handle:

            def read(length: int, offset: int) -> bytes:
                return os.pread(handle.fileno(), length, offset)

            header = gunzip_prefix(read, SIGNATURE_BYTES)
    return nifti_version(header) is not None


class NiftiReader(Reader):
    name: ClassVar[str] = "NIfTI"
    options: ClassVar[Mapping[str, str]] = {}

    def claims(self, location: Location) -> bool:
        return location.is_file and is_nifti(location)

    def open(self, location: Location, options: Mapping[str, Any], block_cache_bytes: int) -> ImageSource:
        from zarrfs.sources.nifti.source import NiftiSource

        return NiftiSource(
            location.path,
            block_cache_bytes=location.reader_cache_bytes(block_cache_bytes),
            file=location.remote_file(block_cache_bytes),
        )
