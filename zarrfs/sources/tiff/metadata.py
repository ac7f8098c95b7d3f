"""What a TIFF says about its image beyond the pixels: physical pixel sizes, channel names and colors (from
OME-XML, ImageJ metadata or plain TIFF tags) and a one-line description of how it is stored."""

from __future__ import annotations

import logging
import math
from typing import Any
from xml.etree import ElementTree

import numpy as np
import tifffile

from zarrfs.sources.base import Channel, PhysicalSize
from zarrfs.units import UnitKind, udunits_name

log = logging.getLogger(__name__)

_RGB_SAMPLES = (("red", "FF0000"), ("green", "00FF00"), ("blue", "0000FF"), ("alpha", None))

_OME_SIZES: tuple[tuple[str, str, str, str, UnitKind], ...] = (  # canonical axis, tifffile axis code,
    # OME Pixels attribute, its default unit, kind
    ("x", "X", "PhysicalSizeX", "µm", "space"),
    ("y", "Y", "PhysicalSizeY", "µm", "space"),
    ("z", "Z", "PhysicalSizeZ", "µm", "space"),
    ("t", "T", "TimeIncrement", "s", "time"),
)

_RESOLUTION_UNIT_MICROMETERS = {3: 1e4, 4: 1e3, 5: 1.0}  # centimeter, millimeter, micrometer (DNG)
_RESOLUTION_UNIT_NAMES = {2: "inch", 3: "cm", 4: "mm", 5: "um"}
_INCH = 2
# Resolutions that writers put in when nobody set one, by (ResolutionUnit, X and Y pixels per unit): served as
# pixel sizes they would turn a slide into metres (libvips: 1000 micrometer per pixel).
_PLACEHOLDER_RESOLUTIONS = {
    (3, 10.0, 10.0): "the value libvips writes when no resolution was set",
}

_KIND_NAMES = {
    "ome": "OME-TIFF",
    "imagej": "ImageJ TIFF",
    "shaped": "TIFF",
    "generic": "TIFF",
    "uniform": "TIFF",
}


def image_metadata(
    tiff: tifffile.TiffFile,
    series: tifffile.TiffPageSeries,
    index: int,
    sources: dict[str, str],
    channel_count: int,
) -> tuple[dict[str, PhysicalSize], list[Channel], list[str]]:
    """Physical sizes by canonical axis, one channel per index of the ``c`` axis (or none), from the richest
    metadata the series has, and notes on what was ignored. ``sources`` maps canonical axes to the tifffile
    axis codes in them.

    Metadata never makes a file fail to open: where tags or XML are malformed in a way not foreseen below,
    the image is served without them."""
    try:
        return _image_metadata(tiff, series, index, sources, channel_count)
    except Exception as error:
        log.debug("metadata ignored (%s: %s): %s", type(error).__name__, error, tiff.filehandle.path)
        return {}, [], [f"metadata ignored: {type(error).__name__}: {error}"]


def _image_metadata(
    tiff: tifffile.TiffFile,
    series: tifffile.TiffPageSeries,
    index: int,
    sources: dict[str, str],
    channel_count: int,
) -> tuple[dict[str, PhysicalSize], list[Channel], list[str]]:
    keyframe = series.keyframe
    samples = _sample_channels(keyframe) if "S" in sources.get("c", "") else []
    pixels = _ome_pixels(tiff, series, index) if series.kind == "ome" else None
    notes: list[str] = []
    if pixels is not None:
        channels = _ome_channels(pixels)
        sizes = _ome_physical_sizes(pixels, sources)
    elif series.kind == "imagej" and tiff.imagej_metadata is not None:
        channels = _imagej_channels(tiff.imagej_metadata, channel_count)
        sizes = _imagej_physical_sizes(tiff.imagej_metadata, keyframe, sources)
    else:
        channels = []
        sizes, notes = _resolution_physical_sizes(keyframe)
    return sizes, _expand_by_samples(channels, samples, channel_count) if channel_count else [], notes


def describe(tiff: tifffile.TiffFile, series: tifffile.TiffPageSeries, index: int, level_count: int) -> str:
    """One line for ``zarrfs info``: kind, storage, compression, dtype, levels, which series."""
    keyframe = series.keyframe
    parts = [_KIND_NAMES.get(series.kind, f"TIFF ({series.kind})")]
    if tiff.is_bigtiff:
        parts.append("BigTIFF")
    if keyframe.is_tiled:
        parts.append(f"tiled {keyframe.tilelength}x{keyframe.tilewidth}")
    else:
        rows = min(keyframe.rowsperstrip, keyframe.imagelength)
        parts.append("one strip per plane" if rows >= keyframe.imagelength else f"strips of {rows} rows")
    compression = compression_name(keyframe).lower()
    if keyframe.predictor != 1:
        predictor = _enum_name(tifffile.PREDICTOR, keyframe.predictor) or str(keyframe.predictor)
        compression += f" + {predictor.lower()} predictor"
    parts.append(compression)
    parts.append(str(np.dtype(series.dtype)))
    if tiff.byteorder == ">":
        parts.append("big-endian")
    if keyframe.planarconfig == 2 and keyframe.samplesperpixel > 1:
        parts.append("planar samples")
    if level_count > 1:
        parts.append(f"{level_count} levels")
    parts.append(f"series {index} of {len(tiff.series)}")
    return ", ".join(parts)


def compression_name(keyframe: tifffile.TiffPage) -> str:
    if keyframe.compression == 1:
        return "uncompressed"
    return _enum_name(tifffile.COMPRESSION, keyframe.compression) or f"compression {keyframe.compression}"


def _enum_name(enum: Any, value: Any) -> str | None:
    """The name tifffile knows the tag value by, if any."""
    try:
        return str(enum(value).name)
    except (TypeError, ValueError):
        return None


def ome_images(xml: str) -> list[ElementTree.Element]:
    """The Image elements of an OME-XML document, in order; none if it does not parse."""
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError:
        return []
    return [element for element in root if element.tag.endswith("}Image") or element.tag == "Image"]


def _ome_pixels(
    tiff: tifffile.TiffFile, series: tifffile.TiffPageSeries, index: int
) -> ElementTree.Element | None:
    """The OME Pixels element describing ``series``: by position when every Image became a series, else by a
    unique Image name."""
    images = ome_images(tiff.ome_metadata or "")
    if len(images) == len(tiff.series):
        image = images[index]
    else:
        named = [element for element in images if element.get("Name") == series.name]
        if len(named) != 1:
            return None
        image = named[0]
    return next((child for child in image if child.tag.endswith("Pixels")), None)


# ----------------------------------------------------------------------------------------------------------
# Physical sizes


def _positive(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def _reciprocal(value: Any) -> float | None:
    positive = _positive(value)
    return None if positive is None else 1 / positive


def _physical_size(value: float | None, unit: Any, kind: UnitKind) -> PhysicalSize | None:
    """A size only in a unit NGFF knows: a pixel-based or unknown unit would make axes incomparable."""
    name = udunits_name(str(unit), kind) if unit is not None else None
    return PhysicalSize(value, name) if value is not None and name is not None else None


def _ome_physical_sizes(pixels: ElementTree.Element, sources: dict[str, str]) -> dict[str, PhysicalSize]:
    sizes = {}
    for axis, code, attribute, default_unit, kind in _OME_SIZES:
        size = _physical_size(
            _positive(pixels.get(attribute)), pixels.get(attribute + "Unit", default_unit), kind
        )
        if size is not None and sources.get(axis) == code:
            sizes[axis] = size
    return sizes


def _imagej_physical_sizes(
    metadata: dict[str, Any], keyframe: tifffile.TiffPage, sources: dict[str, str]
) -> dict[str, PhysicalSize]:
    """ImageJ keeps pixels per unit in X/YResolution, the unit and z spacing in its description."""
    unit = metadata.get("unit")
    x_resolution, y_resolution = keyframe.get_resolution()
    candidates: tuple[tuple[str, float | None, Any, UnitKind], ...] = (  # axis, value, unit, kind
        ("x", _reciprocal(x_resolution), unit, "space"),
        ("y", _reciprocal(y_resolution), metadata.get("yunit", unit), "space"),
        ("z", _positive(metadata.get("spacing")), metadata.get("zunit", unit), "space"),
        ("t", _positive(metadata.get("finterval")), metadata.get("tunit", "sec"), "time"),
    )
    sizes = {}
    for axis, value, axis_unit, kind in candidates:
        # Uncalibrated ImageJ images have no unit (or "pixel"): their spatial "sizes" are just 1 pixel.
        size = _physical_size(value, axis_unit, kind)
        if size is not None and sources.get(axis) == axis.upper():
            sizes[axis] = size
    return sizes


def _resolution_physical_sizes(keyframe: tifffile.TiffPage) -> tuple[dict[str, PhysicalSize], list[str]]:
    """Plain TIFF: X/YResolution only in a metric unit, and not a writer's placeholder; inch-based values are
    print dpi, not pixel sizes. What was ignored is noted."""
    unit = keyframe.resolutionunit  # a tuple, or a float, where the tag has an odd count or type
    micrometers = _RESOLUTION_UNIT_MICROMETERS.get(unit) if isinstance(unit, int | np.integer) else None
    resolution = keyframe.get_resolution()
    if micrometers is None:
        if unit == _INCH and "XResolution" in keyframe.tags:
            shown = f"{resolution[0]:g} pixels/inch"
            return {}, [f"resolution {shown} ignored: inch-based resolutions are for printing"]
        return {}, []
    x_resolution, y_resolution = map(float, resolution)
    placeholder = _PLACEHOLDER_RESOLUTIONS.get((int(unit), x_resolution, y_resolution))
    if placeholder is not None:
        shown = f"{resolution[0]:g} pixels/{_RESOLUTION_UNIT_NAMES[int(unit)]}"
        return {}, [f"resolution {shown} ignored: {placeholder}, not a pixel size"]
    sizes = {}
    for axis, value in zip("xy", resolution, strict=True):
        pixel_size = _reciprocal(value)
        if pixel_size is not None:
            sizes[axis] = PhysicalSize(micrometers * pixel_size, "micrometer")
    return sizes, []


# ----------------------------------------------------------------------------------------------------------
# Channels


def _ome_color(value: str | None) -> str | None:
    """OME colors are signed 32-bit RGBA integers."""
    try:
        rgba = int(value) & 0xFFFFFFFF  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return f"{rgba >> 8:06X}"


def _ome_channels(pixels: ElementTree.Element) -> list[Channel]:
    return [
        Channel(name=element.get("Name"), color=_ome_color(element.get("Color")))
        for element in pixels
        if element.tag.endswith("Channel")
    ]


def _lut_color(lut: Any) -> str | None:
    table = np.asarray(lut)
    if table.ndim != 2 or table.shape[0] != 3:
        return None
    red, green, blue = (int(value) for value in table[:, -1])
    return f"{red:02X}{green:02X}{blue:02X}"


def _imagej_channels(metadata: dict[str, Any], channel_count: int) -> list[Channel]:
    """ImageJ stores per-plane labels and per-channel lookup tables; labels name channels only when every
    plane is a channel."""
    labels = metadata.get("Labels")
    luts = metadata.get("LUTs")
    names = (
        list(labels) if isinstance(labels, list) and len(labels) == channel_count else [None] * channel_count
    )
    colors = (
        [_lut_color(lut) for lut in luts] if isinstance(luts, list) and len(luts) == channel_count else []
    )
    colors = colors or [None] * channel_count
    if not any(names) and not any(colors):
        return []
    return [Channel(name=name or None, color=color) for name, color in zip(names, colors, strict=True)]


def _sample_channels(keyframe: tifffile.TiffPage) -> list[Channel]:
    samples = keyframe.samplesperpixel
    if keyframe.photometric == tifffile.PHOTOMETRIC.RGB and samples in (3, 4):
        return [Channel(name=name, color=color) for name, color in _RGB_SAMPLES[:samples]]
    return []


def _expand_by_samples(channels: list[Channel], samples: list[Channel], count: int) -> list[Channel]:
    """One entry per canonical channel when each declared channel holds several samples (C and S merged)."""
    if len(channels) == count:
        return channels
    if samples and len(channels) * len(samples) == count:
        return [
            Channel(name=" ".join(filter(None, (channel.name, sample.name))) or None, color=sample.color)
            for channel in channels
            for sample in samples
        ]
    return samples if len(samples) == count else []
