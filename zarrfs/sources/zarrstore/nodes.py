"""The nodes of a Zarr v2, Zarr v3 or N5 store (a directory, or a prefix at a URL): which arrays and groups
it holds, read from their metadata documents only (chunk directories are never listed)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from zarrfs.errors import SourceError
from zarrfs.sources.zarrstore.storage import StoreFiles

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

    files: StoreFiles = field(repr=False, compare=False)  # the store's files
    path: str  # relative to the store's root, "/"-separated; "" for the root itself
    format: str  # ZARR3, ZARR2 or N5
    is_array: bool
    metadata: Mapping[str, Any]  # the array's metadata document (N5: attributes.json); {} for groups
    attributes: Mapping[str, Any]  # user attributes (N5: attributes.json, which holds both)
    documents: tuple[str, ...]  # where the documents read are (absolute paths, or URLs as shown)

    @property
    def root(self) -> str:
        """The store's root as shown (a directory, or a URL without credentials)."""
        return self.files.root

    def relative(self, name: str) -> str:
        """The path of ``name`` in this node's directory, relative to the store's root."""
        return f"{self.path}/{name}" if self.path else name

    @property
    def name(self) -> str:
        """How messages name the node: its path in the store."""
        return "/" + self.path

    @property
    def shape(self) -> tuple[int, ...]:
        if self.format == N5:
            return tuple(int(size) for size in self.metadata["dimensions"])
        return tuple(int(size) for size in self.metadata["shape"])


def _load(files: StoreFiles, relative: str) -> dict[str, Any] | None:
    """The JSON object of the document ``relative``; None where there is no such document."""
    data = files.document(relative)
    if data is None:
        return None
    path = files.location(relative)
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise SourceError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise SourceError(f"{path} is not a JSON object")
    return document


def _join(path: str, name: str) -> str:
    return f"{path}/{name}" if path else name


def has_metadata(files: StoreFiles) -> bool:
    """Whether the store's root holds a Zarr v2 or v3 node, or N5 dataset or group attributes."""
    if any(files.document(name) is not None for name in (V3_DOCUMENT, V2_ARRAY, V2_GROUP)):
        return True
    try:
        attributes = _load(files, N5_DOCUMENT)
    except SourceError:
        return False  # not N5's: some other tool's attributes.json
    if attributes is None:
        return False
    return bool(attributes.keys() >= N5_DATASET_KEYS or N5_GROUP_KEYS & attributes.keys())


def read_node(files: StoreFiles, path: str) -> Node | None:
    """The node at ``path`` in the store, or None where its directory holds no metadata."""
    document = _load(files, _join(path, V3_DOCUMENT))
    if document is not None:
        is_array = document.get("node_type") == "array"
        attributes = document.get("attributes") or {}
        read = (files.location(_join(path, V3_DOCUMENT)),)
        return Node(files, path, ZARR3, is_array, document if is_array else {}, attributes, read)
    for name, is_array in ((V2_ARRAY, True), (V2_GROUP, False)):
        document = _load(files, _join(path, name))
        if document is not None:
            read_documents = [files.location(_join(path, name))]
            attributes = _load(files, _join(path, V2_ATTRIBUTES))
            if attributes is not None:
                read_documents.append(files.location(_join(path, V2_ATTRIBUTES)))
            metadata = document if is_array else {}
            return Node(files, path, ZARR2, is_array, metadata, attributes or {}, tuple(read_documents))
    document = _load(files, _join(path, N5_DOCUMENT))
    if document is not None:
        is_array = document.keys() >= N5_DATASET_KEYS
        read = (files.location(_join(path, N5_DOCUMENT)),)
        return Node(files, path, N5, is_array, document if is_array else {}, document, read)
    return None


def child_nodes(node: Node) -> Iterator[Node]:
    """The nodes directly under a group, by name (hidden entries and chunk directories left out; none where
    the store cannot be listed, as most HTTP servers' cannot)."""
    for name in node.files.directories(node.path):
        if name.startswith("."):
            continue
        child = read_node(node.files, node.relative(name))
        if child is not None:
            yield child
