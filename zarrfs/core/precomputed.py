"""Neuroglancer's precomputed volume format as a second representation of the served levels.

Neuroglancer reads ``info`` (one JSON document: data type, channels and one scale per level) and chunk files
``<scale key>/<x0>-<x1>_<y0>-<y1>_<z0>-<z1>`` holding the voxels of that box in ``raw`` encoding: x varies
fastest, then y, z and the channel, little-endian; or, for uint8 images of one or three channels, in ``jpeg``
encoding (lossy, several times smaller: a JPEG as wide as the chunk and as high as its y times z extent, the
channels as grey or RGB). Each scale is one level with the level's own chunk shape
in x, y and z, so a precomputed chunk is assembled from the level's cached chunks (all channels of them) and
never decodes source data twice. The format has no time axis: a time series is served at its first point.
"""

from __future__ import annotations

import json
import re
from typing import Literal

import imagecodecs
import numpy as np

from zarrfs.core.levels import PixelLevel
from zarrfs.core.tree import WouldBlock
from zarrfs.sources import SourceInfo
from zarrfs.units import meters

# Data types the format defines (little-endian); others (float64, bool, complex) have no precomputed form.
DATA_TYPES = frozenset({"uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64", "float32"})
INFO = "info"
Encoding = Literal["raw", "jpeg"]
JPEG_QUALITY = 90
_CHUNK_KEY = re.compile(
    r"(0|[1-9][0-9]{0,18})-([1-9][0-9]{0,18})" + r"_(0|[1-9][0-9]{0,18})-([1-9][0-9]{0,18})" * 2
)
SPATIAL = "xyz"


def _nanometers(info: SourceInfo, axis: str) -> float:
    """The pixel size along ``axis`` in nanometers; 1 where the source does not say (pixels as units)."""
    size = info.physical_sizes.get(axis)
    if size is None or size.unit is None:
        return 1.0
    per_unit = meters(size.unit)
    return 1.0 if per_unit is None else size.value * per_unit * 1e9


class PrecomputedVolume:
    """``info`` and the chunk files of every level; paths are relative to the representation's root.

    ``read_file`` and ``computed_depth`` follow the tree's conventions (``VirtualTree``): ``blocking=False``
    raises WouldBlock unless every level chunk the file needs is cached, and unknown paths raise
    FileNotFoundError."""

    def __init__(self, info: SourceInfo, levels: list[PixelLevel], encoding: Encoding = "raw") -> None:
        self.axes = info.axes
        self.encoding = encoding
        self.levels = {level.name: level for level in levels}
        base = [_nanometers(info, axis) for axis in SPATIAL]
        scales = []
        for level in levels:
            scales.append(
                {
                    "key": level.name,
                    "size": [self._extent(level, axis) for axis in SPATIAL],
                    "resolution": [
                        size * self._along(level.downsampling, axis, 1.0)
                        for size, axis in zip(base, SPATIAL, strict=True)
                    ],
                    "voxel_offset": [0, 0, 0],
                    "chunk_sizes": [[self._along(level.chunks, axis, 1) for axis in SPATIAL]],
                    "encoding": encoding,
                }
            )
        document = {
            "@type": "neuroglancer_multiscale_volume",
            "type": "image",
            "data_type": str(levels[0].dtype.newbyteorder("=")),
            "num_channels": self._channels(levels[0]),
            "scales": scales,
        }
        self.info_document = (json.dumps(document, indent=2) + "\n").encode()

    @staticmethod
    def supports(info: SourceInfo, levels: list[PixelLevel], encoding: Encoding = "raw") -> bool:
        """Whether the format can hold the image in ``encoding``."""
        if encoding == "jpeg":
            channels = levels[0].shape[info.axes.index("c")] if "c" in info.axes else 1
            return info.dtype == np.uint8 and channels in (1, 3)
        return str(info.dtype.newbyteorder("=")) in DATA_TYPES

    def _along(self, values: tuple[int, ...] | tuple[float, ...], axis: str, absent: float) -> float:
        return values[self.axes.index(axis)] if axis in self.axes else absent

    def _extent(self, level: PixelLevel, axis: str) -> int:
        return int(self._along(level.shape, axis, 1))

    def _region(self, path: str) -> tuple[PixelLevel, tuple[slice, ...]]:
        """The level and its region (in the level's axes) that the chunk file ``path`` holds."""
        key, _, name = path.partition("/")
        level = self.levels.get(key)
        match = _CHUNK_KEY.fullmatch(name)
        if level is None or match is None:
            raise FileNotFoundError(path)
        bounds = [int(value) for value in match.groups()]
        box = {}
        for axis, start, stop in zip(SPATIAL, bounds[0::2], bounds[1::2], strict=True):
            chunk, extent = int(self._along(level.chunks, axis, 1)), self._extent(level, axis)
            if start % chunk or start >= extent or stop != min(start + chunk, extent):
                raise FileNotFoundError(path)  # not a box of the scale's chunk grid
            box[axis] = slice(start, stop)
        whole = {"t": slice(0, 1), "c": slice(0, self._channels(level))}
        return level, tuple(box.get(axis) or whole[axis] for axis in self.axes)

    def _channels(self, level: PixelLevel) -> int:
        return level.shape[self.axes.index("c")] if "c" in self.axes else 1

    def computed_depth(self, path: str) -> int:
        try:
            return self._region(path)[0].computed_depth
        except FileNotFoundError:
            return 0

    def read_file(self, path: str, blocking: bool = True) -> bytes:
        if path == INFO:
            return self.info_document
        level, region = self._region(path)
        if not blocking and not self._cached(level, region):
            raise WouldBlock
        pixels = level.read_through_chunks(region)
        # To (channel, z, y, x): the byte order of a raw chunk, x varying fastest.
        if "t" in self.axes:
            pixels = pixels[0]
        for axis in "cz":
            if axis not in self.axes:
                pixels = pixels[np.newaxis] if axis == "c" else pixels[:, np.newaxis]
        if self.encoding == "jpeg":
            channels, depth, height, width = pixels.shape
            image = pixels.transpose(1, 2, 3, 0).reshape(depth * height, width, channels)
            return bytes(
                imagecodecs.jpeg8_encode(image if channels == 3 else image[..., 0], level=JPEG_QUALITY)
            )
        return np.ascontiguousarray(pixels).tobytes()

    @staticmethod
    def _cached(level: PixelLevel, region: tuple[slice, ...]) -> bool:
        return all(level.cached_chunk_pixels(index) is not None for index in level.chunks_covering(region))
