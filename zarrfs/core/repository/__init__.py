"""Repositories: a directory tree of many images served as one live tree (``zarrfs mount DIR MNT``).

Directories are mirrored; every file (or Zarr/N5 directory) a reader claims is a node ``<name>.ome.zarr/``
(naming.py), a ``zarrfs-sequence.json`` turns matching files into one node (rules.py). Listings cost a readdir
and a stat an entry and are kept while valid (listings.py); images are opened on first use, at most
``--max-open`` at once, all in one ``--cache-size`` (pool.py); the served tree is tree.py.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from zarrfs.core.options import ServeOptions
from zarrfs.core.repository.options import RepositoryOptions, repository_options
from zarrfs.core.repository.tree import RepositoryTree
from zarrfs.sources.registry import REGISTRY, Location
from zarrfs.sources.remote import is_url
from zarrfs.sources.remote.options import RemoteOptions

__all__ = ["Repository", "RepositoryOptions", "RepositoryTree", "is_repository", "repository_options"]


@dataclass
class Repository:
    """A served directory of images, as a Dataset is a served image: its tree, closed with it."""

    path: str
    tree: RepositoryTree

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], options: ServeOptions, repository: RepositoryOptions
    ) -> Repository:
        """Serve the directory (or the prefix at a URL) at ``path``: nothing is read until asked for."""
        tree = RepositoryTree(os.fspath(path), options, repository)
        return cls(tree.root, tree)

    @property
    def mtime_ns(self) -> int:
        """The time shown for the served directories."""
        return self.tree.access.mtime_ns()

    @property
    def description(self) -> str:
        return f"repository of images (at most {self.tree.repository.max_open} open at once)"

    def close(self) -> None:
        self.tree.close()


def is_repository(
    source: object, reader_options: Mapping[str, object] | None = None, remote: RemoteOptions | None = None
) -> bool:
    """Whether ``source`` names a directory that no reader opens as one image (a repository to mirror): a
    local one, or a prefix at a URL (reached with ``remote``) under which something is listed."""
    if not isinstance(source, str | os.PathLike) or (reader_options or {}).get("sequence_list") is not None:
        return False
    if is_url(os.fspath(source)):
        from zarrfs.core.repository.remote import is_remote_repository

        return is_remote_repository(os.fspath(source), remote or RemoteOptions())
    location = Location.of(source)
    if not location.is_directory:
        return False
    return not any(reader.claims(location) for reader in REGISTRY.readers())
