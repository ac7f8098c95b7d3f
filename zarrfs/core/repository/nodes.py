"""What a repository serves at each name: a mirrored directory, or an image node over one file, one Zarr/N5
directory or the files of a sequence rule; and the one place where an image node is opened."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Hashable
from dataclasses import dataclass

from zarrfs.core.dataset import Dataset, SharedCaches, open_dataset
from zarrfs.core.options import ServeOptions
from zarrfs.core.repository.rules import SequenceRule
from zarrfs.sources.identity import FileIdentity
from zarrfs.sources.registry import REGISTRY
from zarrfs.sources.remote.identity import ObjectIdentity


@dataclass(frozen=True)
class DirectoryNode:
    path: str


@dataclass(frozen=True)
class ImageNode:
    """An image as the listing saw it: its files and their identities then. A file replaced or rewritten
    is another node (another ``key``): never served as a mix of the two."""

    paths: tuple[str, ...]
    identities: tuple[FileIdentity | ObjectIdentity, ...]  # a file's, or an object's at a URL
    reader: str  # the name of the reader that claimed it
    rule: SequenceRule | None = None  # for the files of a sequence rule

    @property
    def key(self) -> Hashable:
        """Names the served bytes: the open image's key in the pool, and its scope in the shared cache."""
        return (self.paths, self.identities, self.rule)

    @property
    def label(self) -> str:
        """The node for messages: its file, or its directory and rule pattern."""
        if self.rule is None:
            return self.paths[0]
        return os.path.join(os.path.dirname(self.paths[0]), self.rule.pattern)


Node = DirectoryNode | ImageNode


def _reader_options(node: ImageNode, options: ServeOptions) -> dict[str, object]:
    """The per-format options the user set that the node's reader takes (``--series`` applies to the TIFF
    files of a repository, not to its HDF5 files), or the rule's for a sequence."""
    if node.rule is not None:
        return dict(node.rule.source_options())
    takes = next((reader.options for reader in REGISTRY.readers() if reader.name == node.reader), {})
    return {name: value for name, value in options.source.items() if name in takes}


def open_node(
    node: ImageNode, options: ServeOptions, shared: SharedCaches, url: str | None = None
) -> Dataset:
    """Open the image of ``node`` as it was listed: a change since then fails its first read (staleness).
    ``url``: where the node's one object is, credentials included (its path is the URL as shown)."""
    node_options = dataclasses.replace(options, source=_reader_options(node, options))
    source = list(node.paths) if node.rule is not None else url or node.paths[0]
    # An object at a URL is watched from its identity at open (the caller compares it with the listed one).
    listed = zip(node.paths, node.identities, strict=True)
    known = {path: identity for path, identity in listed if isinstance(identity, FileIdentity)}
    return open_dataset(source, node_options, shared, node.key, known)
