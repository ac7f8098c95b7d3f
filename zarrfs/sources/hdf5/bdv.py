"""BigDataViewer HDF5 files: ``t<time>/s<setup>/<level>/cells`` (z, y, x) with each setup's downsampling
factors in ``s<setup>/resolutions``, and voxel sizes and setup names in the XML file beside the ``.h5``.
Setups that differ only in their channel (in the XML's setup attributes) and agree in size and type are the
channels of one image, time points its t; setups of other tiles, angles or illuminations, or of other sizes,
are further images (series) of the file. BigDataViewer stores unsigned 16-bit pixels in signed 16-bit
datasets (Java has no unsigned types) and reads them back as unsigned: so does zarrfs."""

from __future__ import annotations

import os
import re
from xml.etree import ElementTree

import h5py
import numpy as np

from zarrfs.errors import SourceError
from zarrfs.sources.base import Channel, PhysicalSize
from zarrfs.sources.hdf5.layouts import Opener, storage
from zarrfs.sources.hdf5.plan import ImagePlan, LevelPlan, Piece
from zarrfs.units import udunits_name

_SETUP = re.compile(r"s(\d+)")
_TIME = re.compile(r"t(\d+)")


def _numbered(file: h5py.File, pattern: re.Pattern[str]) -> list[tuple[int, str]]:
    return sorted((int(match.group(1)), name) for name in file if (match := pattern.fullmatch(name)))


def _setups(file: h5py.File) -> list[tuple[int, str]]:
    return [(number, name) for number, name in _numbered(file, _SETUP) if "resolutions" in file[name]]


def is_bdv(file: h5py.File) -> bool:
    return bool(_setups(file)) and bool(_numbered(file, _TIME))


def _xml_path(path: str) -> str:
    return os.path.splitext(path)[0] + ".xml"


def _xml_setups(xml_path: str) -> dict[int, ElementTree.Element]:
    """The XML's ViewSetup elements by id; none when there is no readable XML."""
    try:
        root = ElementTree.parse(xml_path).getroot()
    except (OSError, ElementTree.ParseError):
        return {}
    by_id: dict[int, ElementTree.Element] = {}
    for setup in root.iter("ViewSetup"):
        try:
            by_id[int((setup.findtext("id") or "").strip())] = setup
        except ValueError:
            continue
    return by_id


def bdv_images(file: h5py.File, path: str) -> list[list[tuple[int, str]]]:
    """The file's setups grouped into images, in the order of their first setup: setups whose XML attributes
    other than the channel are the same (tile, angle, illumination) and whose first stored volume has the same
    shape and type are the channels of one image."""
    described = _xml_setups(_xml_path(path))
    first_time = _numbered(file, _TIME)[0][1]
    images: dict[tuple[object, ...], list[tuple[int, str]]] = {}
    for number, name in _setups(file):
        element = described.get(number)
        attributes = element.find("attributes") if element is not None else None
        view = sorted(
            (child.tag, (child.text or "").strip())
            for child in (attributes if attributes is not None else [])
            if child.tag != "channel"
        )
        cells = file.get(f"{first_time}/{name}/0/cells")
        stored = (cells.shape, cells.dtype.str) if isinstance(cells, h5py.Dataset) else None
        images.setdefault((tuple(view), stored), []).append((number, name))
    return list(images.values())


def bdv_image_name(setups: list[tuple[int, str]]) -> str:
    """An image of ``bdv_images`` by its setups' numbers."""
    numbers = ", ".join(str(number) for number, _ in setups)
    return f"setup{'s' if len(setups) > 1 else ''} {numbers}"


def bdv_plan(file: h5py.File, open_data: Opener, path: str, setups: list[tuple[int, str]]) -> ImagePlan:
    """The image of ``setups`` (one of ``bdv_images``), each setup a channel."""
    times = _numbered(file, _TIME)
    level_count = min(len(file[name]["resolutions"]) for _, name in setups)
    first_time = times[0][1]
    levels: list[LevelPlan] = []
    description = ""
    served: np.dtype | None = None
    reinterpreted = False
    for level in range(level_count):
        shapes = {}
        for _, setup in setups:
            cells = file.get(f"{first_time}/{setup}/{level}/cells")
            if isinstance(cells, h5py.Dataset):
                shapes[setup] = (cells.shape, cells.dtype)
        if len(set(shapes.values())) > 1:
            break  # a reduced level the setups store differently ends the pyramid (level 0: see bdv_images)
        if not shapes:
            if level == 0:
                raise SourceError(f"BigDataViewer file without image data ({first_time}/s*/0/cells): {path}")
            break
        ((shape, dtype),) = set(shapes.values())
        if len(shape) != 3:
            break
        if level == 0:
            description = storage(file[f"{first_time}/{next(iter(shapes))}/0/cells"])
        as_dtype = np.dtype("uint16") if dtype == np.dtype("int16") else None
        reinterpreted = reinterpreted or as_dtype is not None
        pieces: dict[tuple[int, ...], Piece] = {}
        for t, (_, time) in enumerate(times):
            for c, (_, setup) in enumerate(setups):
                cells = file.get(f"{time}/{setup}/{level}/cells")
                if isinstance(cells, h5py.Dataset) and cells.shape == shape and cells.dtype == dtype:
                    data = open_data(cells, None, as_dtype)
                    served = data.dtype
                    pieces[(t, c) if len(times) > 1 else (c,)] = Piece(data, (0, 1, 2))
        outer = (len(times), len(setups)) if len(times) > 1 else (len(setups),)
        if levels and not all(a >= b for a, b in zip(levels[-1].shape[len(outer) :], shape, strict=True)):
            break
        fill = next(iter(pieces.values())).data.fill if pieces else 0
        levels.append(LevelPlan((*outer, *shape), len(outer), pieces, fill))
    assert served is not None
    xml_path = _xml_path(path)
    sizes, channels = _xml_metadata(xml_path, [number for number, _ in setups])
    return ImagePlan(
        kind="BigDataViewer",
        axes=("tc" if len(times) > 1 else "c") + "zyx",
        levels=levels,
        dtype=served,
        physical_sizes=sizes,
        channels=channels,
        details=f"{len(setups)} setups, {len(times)} time points, {description}",
        dtype_note=" (int16 in the file)" if reinterpreted else "",
        companions=(os.path.abspath(xml_path),) if os.path.isfile(xml_path) else (),
    )


def _xml_metadata(xml_path: str, setups: list[int]) -> tuple[dict[str, PhysicalSize], list[Channel]]:
    """Voxel sizes (of the first setup) and setup names from the BigDataViewer XML, where there is one."""
    by_id = _xml_setups(xml_path)
    if not by_id:
        return {}, []
    channels = [
        Channel(name=(by_id[s].findtext("name") or "").strip() or None) if s in by_id else Channel()
        for s in setups
    ]
    sizes: dict[str, PhysicalSize] = {}
    first = by_id.get(setups[0])
    voxel = first.find("voxelSize") if first is not None else None
    if voxel is not None:
        unit = udunits_name((voxel.findtext("unit") or "").strip(), "space")
        try:
            values = [float(part) for part in (voxel.findtext("size") or "").split()]
        except ValueError:
            values = []
        if unit is not None and len(values) == 3:
            for axis, value in zip("xyz", values, strict=True):
                if value > 0:
                    sizes[axis] = PhysicalSize(value, unit)
    return sizes, channels
