"""OME-NGFF attributes (multiscales, omero) for the served image, built from the source's metadata; each
version's wrapping of them is in formats.py."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from zarrfs.sources import SourceInfo

if TYPE_CHECKING:
    from zarrfs.core.windows import Window

# A level's path, downsampling factors from level 0 and centre of its first pixel in level-0 pixels, from
# high to low resolution.
LevelPlacement = tuple[str, tuple[float, ...], tuple[float, ...]]
Levels = list[LevelPlacement]

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


def level_transformations(
    info: SourceInfo, downsampling: tuple[float, ...], first_pixel_centre: tuple[float, ...]
) -> list[dict[str, Any]]:
    """Scale (the pixel size of the level) and, where the level's first pixel is not centred on the source's
    origin, the translation of its centre (both in physical units)."""
    scale, translation = [], []
    for name, factor, centre in zip(info.axes, downsampling, first_pixel_centre, strict=True):
        size = info.physical_sizes.get(name)
        base = size.value if size is not None and name != "c" else 1.0
        scale.append(float(base * factor))
        translation.append(float(base * centre + _origin(info, name)))
    transformations: list[dict[str, Any]] = [{"type": "scale", "scale": scale}]
    if any(translation):
        transformations.append({"type": "translation", "translation": translation})
    return transformations


def _origin(info: SourceInfo, name: str) -> float:
    """The source's origin on axis ``name`` where it is in the unit that axis is served in, else 0: a pixel
    size set in another unit (``--pixel-size``) would turn a position in the old unit into a wrong one."""
    origin, size = info.origin.get(name), info.physical_sizes.get(name)
    if origin is None or size is None or origin.unit != size.unit:
        return 0.0
    return origin.value


def group_attributes(info: SourceInfo, ngff: dict[str, Any]) -> dict[str, Any]:
    """The image group's attributes: the NGFF ones, then the source's own (which never replace them)."""
    return {**ngff, **{key: value for key, value in info.attributes.items() if key not in ngff}}


def multiscales_metadata(info: SourceInfo, levels: Levels, name: str, method: str | None) -> dict[str, Any]:
    """One multiscales entry: ``levels`` are (path, downsampling factors, first pixel centre) from high to low
    resolution (see ``PixelLevel``)."""
    multiscale: dict[str, Any] = {
        "name": name,
        "axes": axes_metadata(info),
        "datasets": [
            {"path": path, "coordinateTransformations": level_transformations(info, factors, centre)}
            for path, factors, centre in levels
        ],
    }
    if method is not None:
        multiscale["type"] = method
        multiscale["metadata"] = {"description": f"levels computed on demand by zarrfs ({method} of blocks)"}
    return multiscale


def omero_metadata(info: SourceInfo, name: str, windows: Sequence[Window]) -> dict[str, Any]:
    """Rendering settings: per channel a label, a colour and its display window (``windows``, one per
    channel)."""
    count = info.levels[0].shape[info.axes.index("c")] if "c" in info.axes else 1
    defaults = _DEFAULT_COLORS.get(count) or [_COLOR_CYCLE[i % len(_COLOR_CYCLE)] for i in range(count)]
    channels = []
    for index in range(count):
        known = info.channels[index] if index < len(info.channels) else None
        channels.append(
            {
                "label": (known.name if known and known.name else f"Channel {index}"),
                "color": (known.color if known and known.color else defaults[index]),
                "window": windows[index].as_json(),
                "active": True,
                "coefficient": 1.0,
                "family": "linear",
                "inverted": False,
            }
        )
    # Viewers open on the middle plane of a stack, where the sample usually is.
    middle_z = info.levels[0].shape[info.axes.index("z")] // 2 if "z" in info.axes else 0
    rdefs = {"model": "greyscale" if count == 1 else "color", "defaultZ": middle_z, "defaultT": 0}
    return {"name": name, "channels": channels, "rdefs": rdefs}
