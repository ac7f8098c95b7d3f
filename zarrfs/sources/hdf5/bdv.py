"""BigDataViewer HDF5 files: ``t<time>/s<setup>/<level>/cells`` (z, y, x) with each setup's downsampling
factors in ``s<setup>/resolutions``, and voxel sizes and setup names in the XML file beside the ``.h5``.
Setups are served as channels, time points as t. BigDataViewer stores unsigned 16-bit pixels in signed 16-bit
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


def bdv_plan(file: h5py.File, open_data: Opener, path: str) -> ImagePlan:
    setups = _setups(file)
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
            if level == 0:
                described = ", ".join(
                    f"{setup}: {'x'.join(map(str, shape))} {dtype}"
                    for setup, (shape, dtype) in shapes.items()
                )
                raise SourceError(
                    f"BigDataViewer setups differ in size or type ({described}); serve one with --dataset, "
                    f"e.g. --dataset /{first_time}/{next(iter(shapes))}/0/cells: {path}"
                )
            break
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
    xml_path = os.path.splitext(path)[0] + ".xml"
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
    try:
        root = ElementTree.parse(xml_path).getroot()
    except (OSError, ElementTree.ParseError):
        return {}, []
    by_id: dict[int, ElementTree.Element] = {}
    for setup in root.iter("ViewSetup"):
        try:
            by_id[int((setup.findtext("id") or "").strip())] = setup
        except ValueError:
            continue
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
