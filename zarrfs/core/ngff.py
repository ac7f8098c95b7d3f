"""OME-NGFF attributes (multiscales, omero) for the served image, built from the source's metadata."""

from __future__ import annotations

from typing import Any

import numpy as np

from zarrfs.sources import SourceInfo

AXIS_TYPES = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}

# Display colours when the source names none: grey for one channel, RGB for three, else a distinct cycle.
_DEFAULT_COLORS = {
    1: ["FFFFFF"],
    2: ["00FF00", "FF00FF"],
    3: ["FF0000", "00FF00", "0000FF"],
    4: ["FF0000", "00FF00", "0000FF", "FFFFFF"],
}
_COLOR_CYCLE = ["00FFFF", "FF00FF", "FFFF00", "FF0000", "00FF00", "0000FF", "FFFFFF"]


def axes_metadata(info: SourceInfo) -> list[dict[str, str]]:
    axes = []
    for name in info.axes:
        axis = {"name": name, "type": AXIS_TYPES[name]}
        size = info.physical_sizes.get(name)
        if size is not None and size.unit is not None and name != "c":
            axis["unit"] = size.unit
        axes.append(axis)
    return axes


def level_scale(info: SourceInfo, level_shape: tuple[int, ...]) -> list[float]:
    """Physical size of one pixel of a level: the source's pixel size times the level's downsampling."""
    full_shape = info.levels[0].shape
    scale = []
    for name, full, reduced in zip(info.axes, full_shape, level_shape, strict=True):
        size = info.physical_sizes.get(name)
        base = size.value if size is not None and name != "c" else 1.0
        scale.append(float(base * full / reduced))
    return scale


def multiscales_metadata(info: SourceInfo, paths: list[str], name: str) -> dict[str, Any]:
    datasets = [
        {
            "path": path,
            "coordinateTransformations": [{"type": "scale", "scale": level_scale(info, level.shape)}],
        }
        for path, level in zip(paths, info.levels, strict=True)
    ]
    return {"version": "0.4", "name": name, "axes": axes_metadata(info), "datasets": datasets}


def display_window(dtype: np.dtype) -> dict[str, float]:
    """The channel window spans the data type's range (floats: 0 to 1, the usual normalised intensity)."""
    if np.issubdtype(dtype, np.integer):
        limits = np.iinfo(dtype)
        low, high = float(limits.min), float(limits.max)
    else:
        low, high = 0.0, 1.0
    return {"min": low, "max": high, "start": low, "end": high}


def omero_metadata(info: SourceInfo, name: str) -> dict[str, Any]:
    count = info.levels[0].shape[info.axes.index("c")] if "c" in info.axes else 1
    defaults = _DEFAULT_COLORS.get(count) or [_COLOR_CYCLE[i % len(_COLOR_CYCLE)] for i in range(count)]
    channels = []
    for index in range(count):
        known = info.channels[index] if index < len(info.channels) else None
        channels.append(
            {
                "label": (known.name if known and known.name else f"Channel {index}"),
                "color": (known.color if known and known.color else defaults[index]),
                "window": display_window(info.dtype),
                "active": True,
                "coefficient": 1.0,
                "family": "linear",
                "inverted": False,
            }
        )
    # Viewers open on the middle plane of a stack, where the sample usually is.
    middle_z = info.levels[0].shape[info.axes.index("z")] // 2 if "z" in info.axes else 0
    rdefs = {"model": "greyscale" if count == 1 else "color", "defaultZ": middle_z, "defaultT": 0}
    return {"name": name, "version": "0.4", "channels": channels, "rdefs": rdefs}


def image_attributes(info: SourceInfo, paths: list[str], name: str) -> dict[str, Any]:
    """The group ``.zattrs`` of an NGFF 0.4 image."""
    return {"multiscales": [multiscales_metadata(info, paths, name)], "omero": omero_metadata(info, name)}
