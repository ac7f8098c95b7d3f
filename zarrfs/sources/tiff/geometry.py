"""Open-time checks of what a page says about its size and storage: whole positive dimensions, sane tile
sizes, an image within the limits below and a tile or strip table as long as the image needs.

tifffile takes these tags as stored. A corrupt or hostile file would otherwise open fine and fail on every
chunk (a table too short for the image), decode absurd segments, or hand the core float shapes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tifffile

from zarrfs.errors import SourceError
from zarrfs.sources.tiff.layout import SegmentGrid

# Pixels per plane: room for the huge sparse BigTIFFs of slide scanners (a million pixels square), not for
# sizes only a corrupt tag produces.
MAX_PLANE_PIXELS = 2**40
# TIFF tiles are normally a few hundred pixels square (multiples of 16); larger ones are corrupt tags.
MAX_TILE_SIDE = 2**16
# A tile or compressed strip is decoded whole for every chunk that needs it.
MAX_SEGMENT_BYTES = 2**31

Page = tifffile.TiffPage | tifffile.TiffFrame

_DIMENSION_TAGS = (
    ("ImageWidth", "imagewidth"),
    ("ImageLength", "imagelength"),
    ("ImageDepth", "imagedepth"),
    ("SamplesPerPixel", "samplesperpixel"),
)
_TILE_TAGS = (("TileWidth", "tilewidth"), ("TileLength", "tilelength"), ("TileDepth", "tiledepth"))


def is_whole(value: object) -> bool:
    """True for an integer (a tag of a floating-point or text type gives other values)."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def segment_kind(page: Page) -> str:
    """Whether the page stores tiles or strips, for messages; safe on tags of any type (tifffile's
    ``is_tiled`` is not)."""
    keyframe = page.keyframe
    assert keyframe is not None  # a frame's keyframe is set by tifffile when it is read
    return "tile" if is_whole(keyframe.tilewidth) and keyframe.tilewidth > 0 else "strip"


def check_geometry(keyframe: tifffile.TiffPage, path: str) -> None:
    """The keyframe's dimensions and tile or strip sizes are whole, positive and within the limits."""
    for name, attribute in _DIMENSION_TAGS:
        _check_positive(name, getattr(keyframe, attribute), path)
    # Whole numbers first: tifffile's is_tiled compares TileWidth with 0, whatever its type.
    for name, attribute in (*_TILE_TAGS, ("RowsPerStrip", "rowsperstrip")):
        value = getattr(keyframe, attribute)
        if not is_whole(value) or value < 0:
            raise SourceError(f"invalid {name} {_shown(value)}: not a whole number: {path}")
    if keyframe.is_tiled:
        for name, attribute in _TILE_TAGS:
            size = getattr(keyframe, attribute)
            _check_positive(name, size, path)
            if size > MAX_TILE_SIDE:
                raise SourceError(f"invalid {name} {size}: tiles are at most {MAX_TILE_SIDE} pixels: {path}")
    pixels = keyframe.imagewidth * keyframe.imagelength * keyframe.imagedepth
    if pixels > MAX_PLANE_PIXELS:
        raise SourceError(
            f"image of {keyframe.imagewidth}x{keyframe.imagelength} pixels is too large "
            f"(at most 2^40 pixels per plane): {path}"
        )


def _check_positive(name: str, value: object, path: str) -> None:
    if not is_whole(value):
        raise SourceError(f"invalid {name} {_shown(value)}: not a whole number: {path}")
    if value < 1:  # type: ignore[operator]
        raise SourceError(f"invalid {name} {value}: at least 1 is needed: {path}")


def _shown(value: object) -> str:
    """A tag value for a message: a tag with a count of thousands would make a very long line."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_segment_size(grid: SegmentGrid, itemsize: int, path: str) -> None:
    """A tile or strip decoded whole must fit in memory many times over."""
    size = grid.segment_depth * grid.segment_length * grid.segment_width * grid.contig * itemsize
    if size > MAX_SEGMENT_BYTES:
        kind = "tile" if grid.tiled else "strip"
        raise SourceError(
            f"a {kind} of {grid.segment_width}x{grid.segment_length} pixels ({size} bytes) is too large to "
            f"decode (at most {MAX_SEGMENT_BYTES} bytes): {path}"
        )


def check_segment_tables(pages: Sequence[Page | None], grid: SegmentGrid, path: str) -> None:
    """Every page lists an offset and a byte count for each tile or strip of the keyframe's grid (a longer
    table only has unused entries). Only lengths and types: the values are checked where data is read."""
    kind = "tile" if grid.tiled else "strip"
    for page in pages:
        if page is None:
            continue
        for table in (page.dataoffsets, page.databytecounts):
            if isinstance(table, bytes | str):  # a tag of type BYTE, ASCII or UNDEFINED
                raise SourceError(f"invalid {kind} offsets in page {page.index}: not integers: {path}")
        stored = min(len(page.dataoffsets), len(page.databytecounts))
        if stored < grid.count:
            raise SourceError(
                f"invalid {kind} offsets in page {page.index}: {stored} stored, but its "
                f"{grid.width}x{grid.length} image needs {grid.count}: {path}"
            )
