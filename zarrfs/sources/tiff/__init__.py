"""TIFF, BigTIFF, OME-TIFF and ImageJ TIFF files as an image source in canonical ``tczyx`` order.

tifffile parses the file structure once, at open. Pixel reads then bypass tifffile's file handle, which
serializes every seek + read under one lock: each read is an ``os.pread`` on our own read-only descriptor
followed by the page's own decode function, so any number of threads read and decode at the same time.
"""

from zarrfs.sources.tiff.checks import TIFF_SIGNATURES, is_tiff_header
from zarrfs.sources.tiff.source import TiffSource

__all__ = ["TIFF_SIGNATURES", "TiffSource", "is_tiff_header"]
