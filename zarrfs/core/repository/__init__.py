"""Repositories: a directory tree of many images served as one live tree (``zarrfs mount DIR MNT``).

Directories are mirrored; every file (or Zarr/N5 directory) a reader claims is a node ``<name>.ome.zarr/``
(naming.py), a ``zarrfs-sequence.json`` turns matching files into one node (rules.py). Listings cost a readdir
and a stat an entry and are kept while valid (listings.py); images are opened on first use, at most
``--max-open`` at once, all in one ``--cache-size`` (pool.py); the served tree is tree.py.
"""

from __future__ import annotations

import os

from zarrfs.core.repository.options import RepositoryOptions, repository_options
from zarrfs.core.repository.tree import RepositoryTree
from zarrfs.sources.registry import REGISTRY, Location

__all__ = ["RepositoryOptions", "RepositoryTree", "is_repository", "repository_options"]


def is_repository(source: object, reader_options: dict[str, object] | None = None) -> bool:
    """Whether ``source`` names a directory that no reader opens as one image (a repository to mirror)."""
    if not isinstance(source, str | os.PathLike) or (reader_options or {}).get("sequence_list") is not None:
        return False
    location = Location.of(source)
    if not location.is_directory:
        return False
    return not any(reader.claims(location) for reader in REGISTRY.readers())
