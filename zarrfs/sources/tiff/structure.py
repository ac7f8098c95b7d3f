"""Checks of the file structure made before tifffile builds its series, where tifffile itself would hang,
allocate without bound or silently serve less than the file describes.

- The IFD chain: tifffile looks for a loop only among the first 100 IFDs (a later loop makes it read IFDs
  forever) and, where a loop or a broken link ends the chain, serves the pages before it as the whole stack.
- OME-XML announcing more planes than stored: tifffile reserves a slot per announced plane (missing ones
  are served as zeros), so a corrupt SizeZ of a billion exhausts memory.
"""

from __future__ import annotations

import math
import struct
from xml.etree import ElementTree

import tifffile

from zarrfs.errors import SourceError
from zarrfs.sources.tiff.geometry import is_whole

# tifffile's own limit: an IFD with more entries is taken as garbage and ends the chain.
MAX_IFD_ENTRIES = 4096
# One read per IFD: its entry count, and the next-IFD pointer when the IFD is this small (most are).
_IFD_READ_BYTES = 1024

# Planes an OME-XML may announce beyond those stored (missing planes are legitimate, served as zeros; a
# multi-file OME-TIFF stores most planes in other files): a generous multiple of the IFDs of this file,
# never fewer than MIN_, never more than MAX_OME_PLANES.
OME_PLANES_PER_IFD = 1000
MIN_OME_PLANE_LIMIT = 10**5
MAX_OME_PLANES = 10**7


def count_ifds(tiff: tifffile.TiffFile, path: str) -> int:
    """The number of IFDs in the main chain, following it the way tifffile does; a SourceError if the chain
    loops back or breaks off before its end."""
    try:
        offset = tiff.pages.first.offset  # (len(tiff.pages) would walk the chain, into a loop too)
    except IndexError:  # tifffile found no IFD: it says so when building series
        return 0
    handle = tiff.filehandle  # not shared with any other thread yet: opening is single-threaded
    seen: dict[int, int] = {}  # IFD offset -> its position in the chain
    while offset:
        if offset in seen:
            raise SourceError(
                f"IFD chain loops back: IFD {len(seen) - 1} points to IFD {seen[offset]} "
                f"(at byte {offset}): {path}"
            )
        if offset >= handle.size:
            raise SourceError(
                f"file is truncated or corrupt: IFD {len(seen) - 1} points to the next IFD at byte "
                f"{offset} but the file has {handle.size} bytes: {path}"
            )
        seen[offset] = len(seen)
        offset = _next_ifd(handle, offset, tiff.tiff, len(seen) - 1, path)
    return len(seen)


def _read(handle: tifffile.FileHandle, offset: int, length: int) -> bytes:
    handle.seek(offset)
    return handle.read(length)


def _next_ifd(
    handle: tifffile.FileHandle, offset: int, layout: tifffile.TiffFormat, index: int, path: str
) -> int:
    head = _read(handle, offset, _IFD_READ_BYTES)
    if len(head) < layout.tagnosize:
        raise SourceError(f"file is truncated: IFD {index} at byte {offset} is cut off: {path}")
    (entries,) = struct.unpack_from(layout.tagnoformat, head)
    if entries > MAX_IFD_ENTRIES:
        raise SourceError(f"IFD {index} at byte {offset} is corrupt ({entries} entries): {path}")
    pointer_at = layout.tagnosize + entries * layout.tagsize
    pointer = head[pointer_at : pointer_at + layout.offsetsize]
    if len(pointer) < layout.offsetsize:
        pointer = _read(handle, offset + pointer_at, layout.offsetsize)
        if len(pointer) < layout.offsetsize:
            raise SourceError(f"file is truncated: IFD {index} at byte {offset} is cut off: {path}")
    return int(struct.unpack(layout.offsetformat, pointer)[0])


def check_ome_planes(tiff: tifffile.TiffFile, ifds: int, path: str) -> None:
    """Refuse OME-XML announcing far more planes than the file could plausibly hold."""
    if ifds == 0 or not tiff.pages.first.is_ome:
        return
    first = tiff.pages.first
    try:
        root = ElementTree.fromstring(first.description)
    except ElementTree.ParseError:
        return  # tifffile does not use it either
    width, length = first.imagewidth, first.imagelength
    plane = max(1, width * length) if is_whole(width) and is_whole(length) else 1  # else refused later
    announced = max((_announced_planes(pixels, plane) for pixels in _elements(root, "Pixels")), default=0)
    limit = min(MAX_OME_PLANES, max(MIN_OME_PLANE_LIMIT, OME_PLANES_PER_IFD * ifds))
    if announced > limit:
        raise SourceError(f"OME metadata announces {announced} planes but the file holds {ifds}: {path}")


def _elements(root: ElementTree.Element, name: str) -> list[ElementTree.Element]:
    return [element for element in root.iter() if element.tag.rpartition("}")[2] == name]


def _announced_planes(pixels: ElementTree.Element, plane_pixels: int) -> int:
    """Planes of the first page's size that one Pixels element claims: from its sizes, or from one TiffData
    (tifffile reserves a slot for each plane of either)."""
    sizes = [_integer(pixels.get(f"Size{axis}")) for axis in "XYZCT"]
    planes = math.prod(sizes[2:]) * max(1, sizes[0] * sizes[1] // plane_pixels)
    for data in _elements(pixels, "TiffData"):
        planes = max(planes, _integer(data.get("NumPlanes")), _integer(data.get("PlaneCount")))
    return planes


def _integer(value: str | None) -> int:
    """A non-negative OME integer attribute, or 1 where it is missing or not one (tifffile fails on those
    before it allocates anything)."""
    try:
        number = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 1
    return max(number, 1)
