"""Recognising a single-file NIfTI-1 or NIfTI-2 header (``.nii``; ``.nii.gz`` once decompressed)."""

from __future__ import annotations

import struct

NIFTI1_HEADER_BYTES = 348
NIFTI2_HEADER_BYTES = 540
# (version, header size, where the magic is, the magic of a single file: header and voxels in one)
_SIGNATURES = ((1, NIFTI1_HEADER_BYTES, 344, b"n+1\0"), (2, NIFTI2_HEADER_BYTES, 4, b"n+2\0"))
# Enough decompressed bytes to recognise either version.
SIGNATURE_BYTES = 348


def nifti_version(header: bytes) -> int | None:
    """1 or 2 when ``header`` starts a single-file NIfTI header (either byte order), else None."""
    for version, size, magic_at, magic in _SIGNATURES:
        if header[magic_at : magic_at + len(magic)] != magic or len(header) < 4:
            continue
        if size in (struct.unpack("<i", header[:4])[0], struct.unpack(">i", header[:4])[0]):
            return version
    return None


def header_bytes(version: int) -> int:
    """The size of a NIfTI-``version`` header."""
    return NIFTI1_HEADER_BYTES if version == 1 else NIFTI2_HEADER_BYTES
