"""How a repository reaches the tree it mirrors: a local directory (listings.LocalTree) or a prefix at a URL
(remote.RemoteTree).

Everything else in zarrfs.core.repository works on what an access gives: listings of directories named by
paths (or URLs as they may be shown), a version telling cheaply whether a kept listing is still valid, the
check whether a node's files are still as listed, and the one way a node's image is opened.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from zarrfs.core.dataset import Dataset, SharedCaches
from zarrfs.core.options import ServeOptions
from zarrfs.core.repository.nodes import ImageNode
from zarrfs.core.repository.options import RepositoryOptions
from zarrfs.core.repository.scan import Listing


class TreeAccess(ABC):
    """``root``: the served directory as it may be shown; ``recheck_s``: how long a kept listing is used
    without asking whether it is still valid."""

    root: str
    recheck_s: float

    @abstractmethod
    def version(self, directory: str) -> int | None:
        """What changes whenever an entry of ``directory`` is added, removed or renamed (its mtime), or None
        where nothing tells that cheaply (the directory is scanned again); FileNotFoundError once gone."""

    @abstractmethod
    def scan(self, directory: str, options: RepositoryOptions, previous: Listing | None) -> Listing:
        """The listing of ``directory`` now (``previous``: the last one, whose claims are reused for entries
        unchanged since); FileNotFoundError once gone, OSError when it cannot be listed."""

    @abstractmethod
    def changed(self, node: ImageNode) -> bool:
        """Whether any file of ``node`` is no longer as listed."""

    @abstractmethod
    def open(self, node: ImageNode, options: ServeOptions, shared: SharedCaches) -> Dataset:
        """The image of ``node`` as it was listed (a change since fails it, or its first read)."""

    @abstractmethod
    def mtime_ns(self) -> int:
        """The time shown for the served directories: the served directory's, or when a URL was opened."""

    @abstractmethod
    def relative(self, path: str) -> str:
        """``path`` (under ``root``) relative to ``root``, for messages."""
