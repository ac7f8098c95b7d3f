"""Axis names of a plain HDF5 dataset: from ``--axes``, from the attributes tools write, or by rank where
that is unambiguous; physical sizes from ``element_size_um``."""

from __future__ import annotations

import json
from collections.abc import Sequence

import h5py
import numpy as np

from zarrfs.errors import SourceError
from zarrfs.sources.base import CANONICAL_AXES, PhysicalSize
from zarrfs.sources.hdf5.attributes import text

# Dimension labels (h5py dims, netCDF-like tools) and ilastik axis keys -> canonical axis.
_LABELS = {
    "t": "t", "time": "t",
    "c": "c", "ch": "c", "channel": "c", "channels": "c",
    "z": "z", "y": "y", "x": "x",
}  # fmt: skip


def axes_of(dataset: h5py.Dataset, given: str | None, path: str) -> str:
    """The dataset's axis letters in stored order."""
    if given is not None:
        return _checked(given.strip().lower(), dataset, "--axes", path)
    for found, source in (
        (_axes_attribute(dataset), "its axes attribute"),
        (_dimension_labels(dataset), None),
    ):
        if found is not None:
            return _checked(found, dataset, source or "its dimension labels", path)
    return _by_rank(dataset, path)


def _checked(axes: str, dataset: h5py.Dataset, source: str, path: str) -> str:
    shape = "x".join(map(str, dataset.shape))
    problem = None
    if len(axes) != dataset.ndim:
        problem = f"{len(axes)} axes for a dataset of {dataset.ndim} dimensions ({shape})"
    elif set(axes) - set(CANONICAL_AXES) or len(set(axes)) != len(axes):
        problem = f"use each of {', '.join(CANONICAL_AXES)} at most once"
    elif not {"y", "x"} <= set(axes):
        problem = "y and x are needed"
    if problem is not None:
        raise SourceError(
            f"invalid axes {axes!r} from {source} for dataset {dataset.name}: {problem}: {path}"
        )
    return axes


def _letters(names: Sequence[str]) -> str | None:
    letters = [_LABELS.get(name.strip().lower()) for name in names]
    return None if None in letters else "".join(letters)  # type: ignore[arg-type]


def _axes_attribute(dataset: h5py.Dataset) -> str | None:
    """``axes`` ("zyx", ["z", "y", "x"] or "z,y,x") or ilastik's ``axistags`` (JSON with axis keys)."""
    written = text(dataset.attrs.get("axes"))
    if written is not None:
        names = written.split(",") if "," in written else list(written)
        return _letters(names)
    tags = text(dataset.attrs.get("axistags"))
    if tags is not None:
        try:
            keys = [axis["key"] for axis in json.loads(tags)["axes"]]
        except (ValueError, KeyError, TypeError):
            return None
        return _letters(keys)
    return None


def _dimension_labels(dataset: h5py.Dataset) -> str | None:
    """HDF5 dimension scale labels (``DIMENSION_LABELS``, set through h5py's ``dims[i].label``)."""
    if "DIMENSION_LABELS" not in dataset.attrs:
        return None
    labels = [dimension.label for dimension in dataset.dims]
    return _letters(labels) if all(labels) else None


def _by_rank(dataset: h5py.Dataset, path: str) -> str:
    """2-D is an image, 3-D a volume, 5-D tczyx; a 3-D dataset whose last dimension is that of colour samples,
    and every 4-D one, is ambiguous."""
    shape = dataset.shape
    if dataset.ndim == 2:
        return "yx"
    if dataset.ndim == 3 and not (shape[2] <= 4 < min(shape[:2])):
        return "zyx"
    if dataset.ndim == 5:
        return "tczyx"
    example = {3: "yxc or zyx", 4: "czyx or tzyx"}.get(dataset.ndim, "tczyx")
    if dataset.ndim > 5:
        raise SourceError(
            f"dataset {dataset.name} has {dataset.ndim} dimensions: zarrfs serves at most 5 (t, c, z, y, x): "
            f"{path}"
        )
    raise SourceError(
        f"dataset {dataset.name} has {dataset.ndim} dimensions ({'x'.join(map(str, shape))}) and no axis "
        f"names: give them with --axes, e.g. --axes {example.split(' or ')[0]} ({example}): {path}"
    )


def element_sizes(dataset: h5py.Dataset, axes: str) -> dict[str, PhysicalSize]:
    """``element_size_um`` (vigra, ilastik, CellProfiler): micrometres per stored axis."""
    values = dataset.attrs.get("element_size_um")
    try:
        sizes = [float(value) for value in np.asarray(values, dtype=float).ravel()]
    except (TypeError, ValueError):
        return {}
    if len(sizes) != len(axes):
        return {}
    return {
        axis: PhysicalSize(size, "micrometer")
        for axis, size in zip(axes, sizes, strict=True)
        if axis in "zyx" and np.isfinite(size) and size > 0
    }
