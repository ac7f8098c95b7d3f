"""Imaris (``.ims``) files, as the Imaris 5.5 file format describes them:
``DataSet/ResolutionLevel r/TimePoint t/Channel c/Data`` (z, y, x) per level, time point and channel, the
image size and extents in ``DataSetInfo/Image`` and channel names and colours in ``DataSetInfo/Channel c``,
every attribute stored as an array of single characters. ``Data`` arrays are padded beyond the image (to
whole chunks); the image's real size is served."""

from __future__ import annotations

import math
from datetime import datetime

import h5py

from zarrfs.errors import SourceError
from zarrfs.sources.base import Channel, PhysicalSize
from zarrfs.sources.hdf5.attributes import number, positive, text
from zarrfs.sources.hdf5.layouts import Opener, storage
from zarrfs.sources.hdf5.plan import ImagePlan, LevelPlan, Piece
from zarrfs.units import udunits_name


def _data_group(file: h5py.File) -> str:
    return text(file.attrs.get("DataSetDirectoryName")) or "DataSet"


def is_imaris(file: h5py.File) -> bool:
    return isinstance(file.get(f"{_data_group(file)}/ResolutionLevel 0"), h5py.Group)


def _count(group: h5py.Group, prefix: str) -> int:
    count = 0
    while f"{prefix} {count}" in group:
        count += 1
    return count


def _real_size(
    group: h5py.Group, info: h5py.Group | None, previous: tuple[int, ...] | None
) -> tuple[int, ...] | None:
    """(z, y, x) of the image at one level: the channel group's ImageSize attributes, else (level 0) the
    DataSetInfo/Image sizes, else half the previous level (rounded up)."""
    sources = [(group.attrs, ("ImageSizeZ", "ImageSizeY", "ImageSizeX"))]
    if info is not None:
        sources.append((info.attrs, ("Z", "Y", "X")))
    for attributes, names in sources:
        sizes = [number(attributes.get(name)) for name in names]
        if all(size is not None and size >= 1 for size in sizes):
            return tuple(int(size) for size in sizes)  # type: ignore[arg-type]
    return None if previous is None else tuple(math.ceil(size / 2) for size in previous)


def imaris_plan(file: h5py.File, open_data: Opener, path: str) -> ImagePlan:
    root = file[_data_group(file)]
    info = file.get("DataSetInfo")
    image_info = info.get("Image") if isinstance(info, h5py.Group) else None
    first = root["ResolutionLevel 0"]
    times = _count(first, "TimePoint")
    channels = _count(first["TimePoint 0"], "Channel") if times else 0
    if not times or not channels:
        raise SourceError(
            f"Imaris file without image data (no TimePoint 0/Channel 0 in {first.name}): {path}"
        )
    levels: list[LevelPlan] = []
    sizes: tuple[int, ...] | None = None
    dtype = None
    served = None
    description = ""
    for level in range(_count(root, "ResolutionLevel")):
        group = root[f"ResolutionLevel {level}"]
        reference = group.get("TimePoint 0/Channel 0")
        data = reference.get("Data") if isinstance(reference, h5py.Group) else None
        if not isinstance(data, h5py.Dataset) or data.ndim != 3:
            if level == 0:
                raise SourceError(
                    f"Imaris file without image data ({group.name}/TimePoint 0/Channel 0/Data): {path}"
                )
            break
        found = _real_size(reference, image_info if level == 0 else None, sizes)
        shape = tuple(min(real, stored) for real, stored in zip(found or data.shape, data.shape, strict=True))
        if sizes is not None and not all(a >= b for a, b in zip(sizes, shape, strict=True)):
            break
        if dtype is None:
            dtype = data.dtype
            description = storage(data)
        if data.dtype != dtype:
            break
        pieces: dict[tuple[int, ...], Piece] = {}
        for t in range(times):
            for c in range(channels):
                item = group.get(f"TimePoint {t}/Channel {c}/Data")
                if isinstance(item, h5py.Dataset) and item.ndim == 3 and item.dtype == dtype:
                    fitting = tuple(min(a, b) for a, b in zip(shape, item.shape, strict=True))
                    if fitting == shape:
                        piece = Piece(open_data(item, shape, None), (0, 1, 2))
                        served = piece.data.dtype
                        pieces[(t, c) if times > 1 else (c,)] = piece
        outer = (times, channels) if times > 1 else (channels,)
        fill = next(iter(pieces.values())).data.fill if pieces else 0
        levels.append(LevelPlan((*outer, *shape), len(outer), pieces, fill))
        sizes = shape
    assert served is not None
    axes = ("tc" if times > 1 else "c") + "zyx"
    return ImagePlan(
        kind="Imaris",
        axes=axes,
        levels=levels,
        dtype=served,
        physical_sizes=_physical_sizes(image_info, levels[0].shape[-3:], times, info),
        channels=[_channel(info, c) for c in range(channels)],
        details=f"{_counted(channels, 'channel')}, {_counted(times, 'time point')}, {description}",
    )


def _counted(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _physical_sizes(
    image: h5py.Group | None, shape: tuple[int, ...], times: int, info: h5py.Group | None
) -> dict[str, PhysicalSize]:
    sizes: dict[str, PhysicalSize] = {}
    if image is not None:
        unit = udunits_name(text(image.attrs.get("Unit")) or "um", "space") or "micrometer"
        for axis, index, extent in zip("zyx", (2, 1, 0), shape, strict=True):
            low, high = number(image.attrs.get(f"ExtMin{index}")), number(image.attrs.get(f"ExtMax{index}"))
            size = None if low is None or high is None else positive((high - low) / extent)
            if size is not None:
                sizes[axis] = PhysicalSize(size, unit)
    interval = _time_interval(info, times)
    if interval is not None:
        sizes["t"] = PhysicalSize(interval, "second")
    return sizes


def _time_interval(info: h5py.Group | None, times: int) -> float | None:
    """The mean time between time points, from DataSetInfo/TimeInfo's TimePoint1..N stamps."""
    group = info.get("TimeInfo") if isinstance(info, h5py.Group) else None
    if times < 2 or not isinstance(group, h5py.Group):
        return None
    stamps = [text(group.attrs.get(f"TimePoint{t}")) for t in (1, times)]
    try:
        first, last = (datetime.strptime(stamp or "", "%Y-%m-%d %H:%M:%S.%f") for stamp in stamps)
    except ValueError:
        return None
    return positive((last - first).total_seconds() / (times - 1))


def _channel(info: h5py.Group | None, index: int) -> Channel:
    group = info.get(f"Channel {index}") if isinstance(info, h5py.Group) else None
    if not isinstance(group, h5py.Group):
        return Channel()
    name = text(group.attrs.get("Name")) or None
    color = None
    parts = (text(group.attrs.get("Color")) or "").split()
    try:
        rgb = [float(part) for part in parts]
    except ValueError:
        rgb = []
    if len(rgb) == 3 and all(0 <= value <= 1 for value in rgb):
        color = "".join(f"{round(value * 255):02X}" for value in rgb)
    return Channel(name=name, color=color)
