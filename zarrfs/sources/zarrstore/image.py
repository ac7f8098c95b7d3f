"""Which image a store holds and how its dimensions map to canonical axes: an OME-Zarr multiscale group
(NGFF 0.4 on Zarr v2, 0.5 on Zarr v3), an N5 multiscale group (``s0``, ``s1``, ... as BigDataViewer and
n5-viewer write), or one plain array, chosen from a group by ``--dataset`` or by being its only one."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from zarrfs.errors import SourceError
from zarrfs.sources.base import CANONICAL_AXES, Channel, PhysicalSize
from zarrfs.sources.zarrstore.nodes import (
    N5,
    SEARCH_DEPTH,
    SEARCH_LIMIT,
    ZARR2,
    ZARR3,
    Node,
    child_nodes,
    read_node,
)
from zarrfs.sources.zarrstore.storage import StoreFiles
from zarrfs.units import UnitKind, udunits_name

# Axes of plain arrays that do not name them, by rank (N5's are the reverse: x first).
DEFAULT_AXES = {2: "yx", 3: "zyx", 4: "czyx", 5: "tczyx"}
# Dimension names other than the axis letters themselves that mean an axis.
_AXIS_NAMES = {"time": "t", "channel": "c", "channels": "c"}
_N5_LEVEL = re.compile(r"s(\d+)")


@dataclass(frozen=True)
class StoreImage:
    """One image of a store: its level arrays (level 0 first) and what the metadata says of it."""

    kind: str  # for `zarrfs info`: "OME-Zarr (NGFF 0.4, Zarr v2)", "Zarr v3 array /raw", ...
    levels: tuple[Node, ...]
    stored_axes: str  # the axis letter of each stored dimension, in stored order
    physical_sizes: Mapping[str, PhysicalSize]
    channels: tuple[Channel, ...]
    documents: tuple[str, ...]  # every metadata document read

    @property
    def axes(self) -> str:
        """Canonical order: the stored axes sorted as in ``tczyx``."""
        return "".join(axis for axis in CANONICAL_AXES if axis in self.stored_axes)


def find_image(files: StoreFiles, options: Mapping[str, Any]) -> StoreImage:
    """The image at the store's root (or at ``options["dataset"]`` inside it)."""
    dataset = options.get("dataset")
    path = "/".join(part for part in str(dataset or "").split("/") if part and part != ".")
    node = read_node(files, path)
    if node is None:
        if dataset is not None:
            raise SourceError(f"--dataset {dataset}: no Zarr array or group at {path or '/'} in {files.root}")
        raise SourceError(f"no Zarr or N5 metadata in {files.root}")
    return _image_of(node, options, [*node.documents])


def _image_of(node: Node, options: Mapping[str, Any], documents: list[str]) -> StoreImage:
    if node.is_array:
        return _plain_array(node, options, documents)
    if _ngff_multiscales(node) is not None:
        return _ngff_image(node, options, documents)
    if _n5_levels(node):
        return _n5_multiscale(node, options, documents)
    candidates = list(_candidates(node, SEARCH_DEPTH, documents))
    if len(candidates) == 1:
        return _image_of(candidates[0], options, documents)
    if not candidates:
        raise SourceError(
            f"{node.format} group {node.name} in {node.root} holds no array of 2 or more dimensions"
        )
    names = ", ".join(candidate.name for candidate in candidates[:20])
    more = f" and {len(candidates) - 20} more" if len(candidates) > 20 else ""
    raise SourceError(
        f"{node.format} group {node.name} in {node.root} holds {len(candidates)} images ({names}{more}): "
        "choose one with --dataset"
    )


def _candidates(group: Node, depth: int, documents: list[str]) -> Iterator[Node]:
    """Images under a group: multiscale groups (not searched further) and arrays of 2 or more dimensions.
    The documents read on the way are added to ``documents``: they decided what is served."""
    found = 0
    for child in child_nodes(group):
        documents.extend(child.documents)
        if child.is_array:
            if len(child.shape) >= 2:
                found += 1
                yield child
        elif _ngff_multiscales(child) is not None or _n5_levels(child):
            found += 1
            yield child
        elif depth > 1:
            for grandchild in _candidates(child, depth - 1, documents):
                found += 1
                yield grandchild
        if found >= SEARCH_LIMIT:
            return


# ---- plain arrays ----------------------------------------------------------------------------------------


def _axis_letters(names: Sequence[Any] | None) -> str | None:
    """Axis letters for dimension names, or None when the names are missing or incomplete."""
    if not names or any(not isinstance(name, str) for name in names):
        return None
    return "".join(_AXIS_NAMES.get(name.lower(), name.lower()) for name in names)


def _check_axes(axes: str, rank: int, what: str, origin: str) -> str:
    if len(axes) != rank or len(set(axes)) != rank or not set(axes) <= set(CANONICAL_AXES):
        raise SourceError(
            f"{what} has {rank} dimensions, but its axes from {origin} are {axes!r}: give --axes with "
            f"{rank} of t, c, z, y, x in stored order"
        )
    if not {"y", "x"} <= set(axes):
        raise SourceError(f"{what} has no y and x axes ({origin} says {axes!r}): give --axes")
    return axes


def _checked_rank(node: Node) -> int:
    rank = len(node.shape)
    if not 2 <= rank <= 5:
        raise SourceError(
            f"{node.format} array {node.name} in {node.root} has {rank} dimension{'s' * (rank != 1)}: "
            "zarrfs serves images of 2 to 5 dimensions"
        )
    return rank


def _plain_array(node: Node, options: Mapping[str, Any], documents: list[str]) -> StoreImage:
    rank = _checked_rank(node)
    what = f"{node.format} array {node.name}"
    given = options.get("axes")
    if given is not None:
        axes = _check_axes(str(given).lower(), rank, what, "--axes")
    else:
        if node.format == ZARR3:
            names, origin = node.metadata.get("dimension_names"), "dimension_names"
        elif node.format == ZARR2:
            names, origin = node.attributes.get("_ARRAY_DIMENSIONS"), "_ARRAY_DIMENSIONS"
        else:
            names, origin = node.attributes.get("axes"), "its axes attribute"
        letters = _axis_letters(names)
        if letters is not None:
            axes = _check_axes(letters, rank, what, origin)
        else:
            default = DEFAULT_AXES[rank]
            axes = default[::-1] if node.format == N5 else default
    sizes = _n5_resolution(node.attributes, axes) if node.format == N5 else {}
    kind = f"{node.format} array {node.name}"
    return StoreImage(kind, (node,), axes, sizes, (), tuple(documents))


# ---- OME-Zarr --------------------------------------------------------------------------------------------


def _ngff_multiscales(node: Node) -> dict[str, Any] | None:
    """The first multiscales entry of an NGFF image group (0.5 under "ome", 0.4 and older at top level)."""
    attributes = node.attributes
    ome = attributes.get("ome")
    holder = ome if isinstance(ome, dict) and "multiscales" in ome else attributes
    multiscales = holder.get("multiscales")
    if isinstance(multiscales, list) and multiscales and isinstance(multiscales[0], dict):
        return multiscales[0]
    return None


def _ngff_version(node: Node, multiscales: Mapping[str, Any]) -> str:
    ome = node.attributes.get("ome")
    version = ome.get("version") if isinstance(ome, dict) else multiscales.get("version")
    return str(version) if version is not None else "unknown version"


def _scale(transformations: Any) -> list[float] | None:
    for transformation in transformations or ():
        if isinstance(transformation, dict) and transformation.get("type") == "scale":
            return [float(value) for value in transformation.get("scale", ())]
    return None


def _ngff_image(node: Node, options: Mapping[str, Any], documents: list[str]) -> StoreImage:
    multiscales = _ngff_multiscales(node)
    assert multiscales is not None
    what = f"OME-Zarr image {node.name} in {node.root}"
    axes_metadata = multiscales.get("axes") or []
    names = [axis.get("name") if isinstance(axis, dict) else axis for axis in axes_metadata]
    datasets = [dataset for dataset in multiscales.get("datasets") or () if isinstance(dataset, dict)]
    if not datasets:
        raise SourceError(f"{what} lists no datasets in its multiscales metadata")
    levels: list[Node] = []
    for dataset in datasets:
        path = "/".join(part for part in (node.path, str(dataset.get("path", ""))) if part)
        level = read_node(node.files, path)
        if level is None or not level.is_array:
            if not levels:
                raise SourceError(f"{what}: its level 0 {path!r} is not an array")
            break  # serve the levels before a missing one
        if levels and (len(level.shape) != len(levels[0].shape)):
            break
        levels.append(level)
        documents.extend(level.documents)
    rank = _checked_rank(levels[0])
    given = options.get("axes")
    if given is not None:
        axes = _check_axes(str(given).lower(), rank, what, "--axes")
    else:
        letters = _axis_letters(names)
        axes = _check_axes(
            letters or DEFAULT_AXES[rank], rank, what, "its multiscales axes" if letters else "its rank"
        )
    units = [axis.get("unit") if isinstance(axis, dict) else None for axis in axes_metadata]
    if len(units) != rank:
        units = [None] * rank
    scale = _scale(datasets[0].get("coordinateTransformations")) or [1.0] * rank
    overall = _scale(multiscales.get("coordinateTransformations")) or [1.0] * rank
    sizes: dict[str, PhysicalSize] = {}
    if len(scale) == rank and len(overall) == rank:
        for axis, unit, value, factor in zip(axes, units, scale, overall, strict=True):
            if axis == "c":
                continue
            unit_kind: UnitKind = "time" if axis == "t" else "space"
            sizes[axis] = PhysicalSize(value * factor, udunits_name(unit, unit_kind) if unit else None)
    kind = f"OME-Zarr (NGFF {_ngff_version(node, multiscales)}, {node.format})"
    return StoreImage(kind, tuple(levels), axes, sizes, _omero_channels(node.attributes), tuple(documents))


def _omero_channels(attributes: Mapping[str, Any]) -> tuple[Channel, ...]:
    ome = attributes.get("ome")
    holder = ome if isinstance(ome, dict) and "omero" in ome else attributes
    omero = holder.get("omero")
    channels = omero.get("channels") if isinstance(omero, dict) else None
    if not isinstance(channels, list):
        return ()
    result = []
    for channel in channels:
        channel = channel if isinstance(channel, dict) else {}
        label, color = channel.get("label"), channel.get("color")
        valid_color = (
            color.upper() if isinstance(color, str) and re.fullmatch(r"[0-9A-Fa-f]{6}", color) else None
        )
        result.append(Channel(str(label) if label is not None else None, valid_color))
    return tuple(result)


# ---- N5 ----------------------------------------------------------------------------------------------------


def _n5_levels(node: Node) -> list[Node]:
    """``s0``, ``s1``, ... of an N5 group, while they are datasets of the same rank (none: not multiscale)."""
    if node.format != N5:
        return []
    levels: list[Node] = []
    while True:
        level = read_node(node.files, node.relative(f"s{len(levels)}"))
        if level is None or not level.is_array or level.format != N5:
            return levels
        if levels and len(level.shape) != len(levels[0].shape):
            return levels
        levels.append(level)


def _n5_resolution(attributes: Mapping[str, Any], axes: str) -> dict[str, PhysicalSize]:
    """Pixel sizes from ``pixelResolution`` (n5-viewer: {"dimensions": [...], "unit": "um"}) or
    ``resolution`` (BigDataViewer, Paintera: [...] with ``units``), both x first like the dimensions."""
    values: Any = None
    units: Any = None
    resolution = attributes.get("pixelResolution")
    if isinstance(resolution, dict):
        values, units = resolution.get("dimensions"), resolution.get("unit")
    elif isinstance(resolution, list):
        values = resolution
    elif isinstance(attributes.get("resolution"), list):
        values, units = attributes["resolution"], attributes.get("units")
    if not isinstance(values, list) or len(values) != len(axes):
        return {}
    if not isinstance(units, list):
        units = [units] * len(axes)
    sizes = {}
    for axis, value, unit in zip(axes, values, units, strict=False):
        if axis == "c" or not isinstance(value, int | float):
            continue
        kind: UnitKind = "time" if axis == "t" else "space"
        sizes[axis] = PhysicalSize(float(value), udunits_name(unit, kind) if isinstance(unit, str) else None)
    return sizes


def _n5_multiscale(node: Node, options: Mapping[str, Any], documents: list[str]) -> StoreImage:
    levels = _n5_levels(node)
    for level in levels:
        documents.extend(level.documents)
    first = _plain_array(levels[0], options, [])
    sizes = _n5_resolution(node.attributes, first.stored_axes) or dict(first.physical_sizes)
    kind = f"N5 multiscale group {node.name}"
    return StoreImage(kind, tuple(levels), first.stored_axes, sizes, (), tuple(documents))
