"""Recognising what an HDF5 file holds: an Imaris file, a BigDataViewer file, a 3D-PLI section, or a plain
dataset (named with ``--dataset``, or the only image-like dataset of the file)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import h5py
import numpy as np

from zarrfs.errors import SourceError
from zarrfs.sources.base import CANONICAL_AXES, PhysicalSize
from zarrfs.sources.hdf5.attributes import positive
from zarrfs.sources.hdf5.axes import axes_of, element_sizes
from zarrfs.sources.hdf5.filters import describe, pipeline
from zarrfs.sources.hdf5.plan import ImagePlan, LevelPlan, Piece
from zarrfs.sources.hdf5.stored import SERVABLE_KINDS, StoredData

# Opens one dataset's pixels: (dataset, shape served or None for all, dtype served or None for its own).
Opener = Callable[[h5py.Dataset, tuple[int, ...] | None, np.dtype | None], StoredData]
MAX_LISTED = 8  # candidates named in an error message


def storage(dataset: h5py.Dataset) -> str:
    """How a dataset is stored, for `zarrfs info`: "chunked 64x64x64, shuffle + deflate"."""
    if dataset.chunks is None:
        return (
            "contiguous" if dataset.id.get_create_plist().get_layout() == h5py.h5d.CONTIGUOUS else "compact"
        )
    return f"chunked {'x'.join(map(str, dataset.chunks))}, {describe(pipeline(dataset))}"


def single_piece_level(data: StoredData, stored_axes: str) -> tuple[str, LevelPlan]:
    """A level served from one dataset: its canonical axes and plan (stored axes transposed as needed)."""
    axes = "".join(axis for axis in CANONICAL_AXES if axis in stored_axes)
    order = tuple(stored_axes.index(axis) for axis in axes)
    shape = tuple(data.shape[axis] for axis in order)
    return axes, LevelPlan(shape, 0, {(): Piece(data, order)}, data.fill)


def image_datasets(file: h5py.File) -> list[str]:
    """Every dataset of two or more dimensions holding numbers, by path."""
    found: list[str] = []

    def visit(name: str, item: Any) -> None:
        if isinstance(item, h5py.Dataset) and item.ndim >= 2 and item.dtype.kind in SERVABLE_KINDS:
            found.append("/" + name)

    file.visititems(visit)
    return found


def _listed(paths: list[str]) -> str:
    shown = ", ".join(paths[:MAX_LISTED])
    return shown + (f" and {len(paths) - MAX_LISTED} more" if len(paths) > MAX_LISTED else "")


def named_dataset(file: h5py.File, name: str, path: str) -> h5py.Dataset:
    """The dataset ``--dataset`` names, or a one-line error saying what is there instead."""
    item = file.get(name)
    if isinstance(item, h5py.Dataset):
        if item.ndim < 2:
            raise SourceError(
                f"dataset {item.name} has {item.ndim} dimension{'s' if item.ndim != 1 else ''}: zarrfs "
                f"serves datasets of 2 or more ({_candidates(file)}): {path}"
            )
        return item
    if isinstance(item, h5py.Group):
        raise SourceError(f"{item.name} is a group, not a dataset ({_candidates(file)}): {path}")
    raise SourceError(f"--dataset {name}: no such dataset in the file ({_candidates(file)}): {path}")


def _candidates(file: h5py.File) -> str:
    found = image_datasets(file)
    return f"datasets of 2 or more dimensions: {_listed(found)}" if found else "it has no image datasets"


def plain_plan(dataset: h5py.Dataset, axes_option: str | None, open_data: Opener, path: str) -> ImagePlan:
    stored_axes = axes_of(dataset, axes_option, path)
    data = open_data(dataset, None, None)
    axes, level = single_piece_level(data, stored_axes)
    transposed = "" if stored_axes == axes else f", stored as {stored_axes}"
    return ImagePlan(
        kind="HDF5",
        axes=axes,
        levels=[level],
        dtype=data.dtype,
        physical_sizes=element_sizes(dataset, stored_axes),
        details=f"dataset {dataset.name}{transposed}, {storage(dataset)}",
    )


# ----------------------------------------------------------------------------------------------------------
# 3D-PLI: /Image with reduced levels /pyramid/00, /pyramid/01, ... and pixel sizes in its attributes


def is_pli(file: h5py.File) -> bool:
    image = file.get("Image")
    return isinstance(image, h5py.Dataset) and ("pyramid" in file or "pixel_width" in image.attrs)


def _pyramid_levels(file: h5py.File) -> list[h5py.Dataset]:
    pyramid = file.get("pyramid")
    if not isinstance(pyramid, h5py.Group):
        return []
    levels = []
    for name in sorted((name for name in pyramid if name.isdigit()), key=int):
        item = pyramid[name]
        if isinstance(item, h5py.Group):
            item = item.get("Image")
        if isinstance(item, h5py.Dataset):
            levels.append(item)
    return levels


def pli_plan(file: h5py.File, axes_option: str | None, open_data: Opener, path: str) -> ImagePlan:
    image = file["Image"]
    stored_axes = axes_of(image, axes_option, path)
    data = open_data(image, None, None)
    axes, level = single_piece_level(data, stored_axes)
    levels = [level]
    for dataset in _pyramid_levels(file):
        smaller = dataset.shape != image.shape and dataset.ndim == image.ndim and dataset.dtype == image.dtype
        if not smaller:
            continue  # the full resolution again (some writers store it as pyramid/00)
        _, reduced = single_piece_level(open_data(dataset, None, None), stored_axes)
        if all(a >= b for a, b in zip(levels[-1].shape, reduced.shape, strict=True)):
            levels.append(reduced)
    sizes = {}
    for axis, names in (("x", ("pixel_width",)), ("y", ("pixel_height", "pixel_width"))):
        value = next((image.attrs[name] for name in names if name in image.attrs), None)
        size = positive(value)
        if size is not None and axis in axes:
            sizes[axis] = PhysicalSize(size, "micrometer")
    return ImagePlan(
        kind="3D-PLI",
        axes=axes,
        levels=levels,
        dtype=data.dtype,
        physical_sizes=sizes,
        details=f"/Image, {storage(image)}",
    )
