"""The nodes of a Zarr v2, Zarr v3 or N5 store on disk: which arrays and groups a directory holds, read from
their metadata documents only (chunk directories are never listed)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from zarrfs.errors import SourceError

ZARR3 = "Zarr v3"
ZARR2 = "Zarr v2"
N5 = "N5"

# Metadata documents by format, in the order a node is recognised (a directory holding both a Zarr v3 and a
# v2 node, as a zarrfs mount does, is read as Zarr v3).
V3_DOCUMENT = "zarr.json"
V2_ARRAY, V2_GROUP, V2_ATTRIBUTES = ".zarray", ".zgroup", ".zattrs"
N5_DOCUMENT = "attributes.json"
# Keys an N5 attributes.json holds: a dataset's, the root's version, and those of multiscale groups.
N5_DATASET_KEYS = frozenset({"dimensions", "dataType", "blockSize"})
N5_GROUP_KEYS = frozenset({"n5", "downsamplingFactors", "scales", "pixelResolution", "multiScale"})
# Groups below the named one searched for arrays, and arrays listed at most, when no --dataset is given.
SEARCH_DEPTH = 4
SEARCH_LIMIT = 1000


@dataclass(frozen=True)
class Node:
    """One array or group: where it is, in which format, and what its metadata documents say."""

    root: str  # the store's directory (absolute)
    path: str  # relative to root, "/"-separated; "" for the root itself
    format: str  # ZARR3, ZARR2 or N5
    is_array: bool
    metadata: Mapping[str, Any]  # the array's metadata document (N5: attributes.json); {} for groups
    attributes: Mapping[str, Any]  # user attributes (N5: attributes.json, which holds both)
    documents: tuple[str, ...]  # absolute paths of the documents read

    @property
    def directory(self) -> str:
        return os.path.join(self.root, *self.path.split("/")) if self.path else self.root

    @property
    def name(self) -> str:
        """How messages name the node: its path in the store."""
        return "/" + self.path

    @property
    def shape(self) -> tuple[int, ...]:
        if self.format == N5:
            return tuple(int(size) for size in self.metadata["dimensions"])
        return tuple(int(size) for size in self.metadata["shape"])


def _load(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            document = json.load(handle)
    except PermissionError:
        raise SourceError(f"no permission to read {path}") from None
    except OSError as error:
        raise SourceError(f"cannot read {path}: {error.strerror}") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise SourceError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise SourceError(f"{path} is not a JSON object")
    return document


def has_metadata(directory: str) -> bool:
    """Whether ``directory`` holds a Zarr v2 or v3 node, or N5 dataset or group attributes."""
    if any(os.path.isfile(os.path.join(directory, name)) for name in (V3_DOCUMENT, V2_ARRAY, V2_GROUP)):
        return True
    n5 = os.path.join(directory, N5_DOCUMENT)
    if not os.path.isfile(n5):
        return False
    try:
        attributes = _load(n5)
    except SourceError:
        return False  # not N5's: some other tool's attributes.json
    return bool(attributes.keys() >= N5_DATASET_KEYS or N5_GROUP_KEYS & attributes.keys())


def read_node(root: str, path: str) -> Node | None:
    """The node at ``path`` under ``root``, or None where the directory holds no metadata."""
    directory = os.path.join(root, *path.split("/")) if path else root
    v3 = os.path.join(directory, V3_DOCUMENT)
    if os.path.isfile(v3):
        document = _load(v3)
        is_array = document.get("node_type") == "array"
        attributes = document.get("attributes") or {}
        return Node(root, path, ZARR3, is_array, document if is_array else {}, attributes, (v3,))
    for name, is_array in ((V2_ARRAY, True), (V2_GROUP, False)):
        document_path = os.path.join(directory, name)
        if os.path.isfile(document_path):
            document = _load(document_path)
            read = [document_path]
            attributes_path = os.path.join(directory, V2_ATTRIBUTES)
            attributes = {}
            if os.path.isfile(attributes_path):
                attributes = _load(attributes_path)
                read.append(attributes_path)
            return Node(root, path, ZARR2, is_array, document if is_array else {}, attributes, tuple(read))
    n5 = os.path.join(directory, N5_DOCUMENT)
    if os.path.isfile(n5):
        document = _load(n5)
        is_array = document.keys() >= N5_DATASET_KEYS
        return Node(root, path, N5, is_array, document if is_array else {}, document, (n5,))
    return None


def child_nodes(node: Node) -> Iterator[Node]:
    """The nodes directly under a group, by name (hidden entries and chunk directories left out)."""
    try:
        entries = sorted(entry.name for entry in os.scandir(node.directory) if entry.is_dir())
    except OSError as error:
        raise SourceError(f"cannot list {node.directory}: {error.strerror}") from None
    for name in entries:
        if name.startswith("."):
            continue
        child = read_node(node.root, f"{node.path}/{name}" if node.path else name)
        if child is not None:
            yield child
