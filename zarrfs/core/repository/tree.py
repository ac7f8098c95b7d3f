"""The served tree of a repository: its directories mirrored, each image a node whose inside is that image's
own virtual tree (zarrfs.core.tree.VirtualTree), opened on first use; ``/.zarrfs/stats.json`` at the root.

It answers in VirtualTree's calling convention (zarrfs.core.tree.ServedTree), so the FUSE operations, the
request policy, the zarr store and the HTTP server serve it as they serve one image. Nothing is opened to
list a directory or to look a node up: only a request inside a node opens its image.
"""

from __future__ import annotations

import collections
import contextlib
import posixpath
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from zarrfs.core.dataset import Dataset, SharedCaches
from zarrfs.core.levels import ChunkReadError
from zarrfs.core.options import ServeOptions
from zarrfs.core.repository.access import TreeAccess
from zarrfs.core.repository.listings import Listings, LocalTree
from zarrfs.core.repository.nodes import DirectoryNode, ImageNode
from zarrfs.core.repository.options import RepositoryOptions
from zarrfs.core.repository.pool import OpenImages
from zarrfs.core.repository.scan import CONTROL_DIRECTORY, Listing
from zarrfs.core.repository.stats import stats_document
from zarrfs.core.staleness import SourceChangedError
from zarrfs.core.tree import DIRECTORY, Entry, FileBytes, WouldBlock
from zarrfs.sources.remote import is_url

STATS_FILE = "stats.json"
# The stats document is made again at most this often (a lookup and the reads after it see one version).
STATS_REFRESH_S = 0.5
# Names of the metadata documents inside a node, for nodes whose image is not open (see ``is_document``).
DOCUMENT_NAMES = frozenset({".zgroup", ".zattrs", ".zarray", ".zmetadata", "zarr.json"})


class ImageGoneError(ChunkReadError):
    """A request for an image node (or a directory) that was deleted or replaced and is not shown again yet,
    or for a path inside it: an I/O error, not "no such file", which Zarr clients read as a chunk of zeros
    (through FUSE the node's own lookup decides: the kernel asks for nothing inside a name it was told is not
    there)."""


@dataclass(frozen=True)
class _Directory:
    path: str  # the real directory


@dataclass(frozen=True)
class _Inside:
    node: ImageNode
    directory: str  # the real directory listing the node
    path: str  # the path inside the image ("" for the node itself)


@dataclass(frozen=True)
class _Control:
    path: str  # inside /.zarrfs ("" for the directory itself)


def _split(path: str) -> list[str]:
    normalized = posixpath.normpath("/" + path.strip("/"))
    return [] if normalized == "/" else normalized.strip("/").split("/")


class RepositoryTree:
    """A directory tree of images served live (see zarrfs.core.repository)."""

    def __init__(self, root: str, options: ServeOptions, repository: RepositoryOptions) -> None:
        """``root``: a local directory, or a URL of a prefix (an S3 prefix, a listable HTTP directory)."""
        self.access = _access(root, options)
        self.root = self.access.root  # as it may be shown: a URL without credentials
        self.options = options
        self.repository = repository
        self.shared = SharedCaches.within(options.cache_bytes, repository.max_open)
        self.images = OpenImages(
            lambda node: self.access.open(node, options, self.shared), repository.max_open
        )
        self.listings = Listings(self.access, repository, self.images.retire)
        self._chunks_served = 0
        self._errors: collections.Counter[str] = collections.Counter()
        self._counts_lock = threading.Lock()
        self._stats: tuple[float, bytes] = (-STATS_REFRESH_S, b"")
        self.started = time.time()

    # -- resolution ---------------------------------------------------------------------------------------

    def _resolve(self, path: str, blocking: bool) -> _Directory | _Inside | _Control | None:
        parts = _split(path)
        if parts and parts[0] == CONTROL_DIRECTORY:
            return _Control("/".join(parts[1:]))
        directory = self.root
        for depth, part in enumerate(parts):
            try:
                listing = self.listings.get(directory, blocking)
            except FileNotFoundError:
                return None  # the directory vanished
            node = listing.children.get(part)
            if node is None:
                if part in listing.gone:
                    gone = "/".join(parts[: depth + 1])
                    raise ImageGoneError(f"{gone} was deleted or replaced (since it was listed)")
                return None
            if isinstance(node, DirectoryNode):
                directory = node.path
                continue
            return _Inside(node, directory, "/".join(parts[depth + 1 :]))
        return _Directory(directory)

    def listing(self, path: str) -> Listing:
        """The listing of the mirrored directory at ``path`` (for ``zarrfs info``); FileNotFoundError or
        NotADirectoryError otherwise."""
        where = self._resolve(path, True)
        if not isinstance(where, _Directory):
            raise FileNotFoundError(path) if where is None else NotADirectoryError(path)
        return self.listings.get(where.path)

    @contextlib.contextmanager
    def _image(self, inside: _Inside, blocking: bool) -> Iterator[Dataset]:
        """The node's open image for one request; counts its failures. When its files changed (the
        staleness check says so, or a failure finds them changed: a sequence checks its files itself),
        its directory is scanned again, so that the next request sees the files as they are now (another
        node); the directory's mtime does not tell of a file rewritten in place."""
        node = inside.node
        try:
            with self.images.using(node, blocking) as dataset:
                yield dataset
        except (SourceChangedError, ChunkReadError) as error:
            self._count_error(node)
            if isinstance(error, SourceChangedError) or self.access.changed(node):
                self.images.retire([node])
                self.listings.invalidate(inside.directory)
            raise

    def _count_error(self, node: ImageNode) -> None:
        with self._counts_lock:
            self._errors[node.label] += 1

    # -- the calling convention of VirtualTree ------------------------------------------------------------

    def stat(self, path: str, blocking: bool = True) -> Entry | None:
        where = self._resolve(path, blocking)
        if isinstance(where, _Directory):
            return Entry(DIRECTORY)
        if isinstance(where, _Control):
            if where.path == "":
                return Entry(DIRECTORY)
            return Entry(len(self._stats_bytes())) if where.path == STATS_FILE else None
        if where is None:
            return None
        if where.path == "":
            return Entry(DIRECTORY)  # a node is a directory: looking it up opens nothing
        with self._image(where, blocking) as dataset:
            return dataset.tree.stat(where.path, blocking)

    def listdir(self, path: str, start: int = 0, blocking: bool = True) -> Iterator[str]:
        """As VirtualTree.listdir; a non-blocking call raises WouldBlock where it would scan a directory or
        open an image (the caller asks again where a time limit applies)."""
        where = self._resolve(path, blocking)
        if isinstance(where, _Directory):
            try:
                names = self.listings.get(where.path, blocking).names
            except FileNotFoundError:
                if where.path != self.root:
                    raise
                names = []  # the mount's root stays a directory, empty while SRC is gone
            return (names[index] for index in range(start, len(names)))
        if isinstance(where, _Control):
            if where.path == "":
                return iter([STATS_FILE][start:])
            raise FileNotFoundError(path) if where.path != STATS_FILE else NotADirectoryError(path)
        if where is None:
            raise FileNotFoundError(path)
        with self._image(where, blocking) as dataset:
            names_inside = dataset.tree.listdir(where.path, start, blocking)
            first = next(names_inside, None)  # raises here what the image's tree raises
        return iter([]) if first is None else _chain(first, names_inside)

    def is_document(self, path: str) -> bool:
        where = self._at_hand(path)
        if isinstance(where, _Control):
            return where.path == STATS_FILE
        if not isinstance(where, _Inside):
            return False
        dataset = self.images.is_open(where.node)
        if dataset is not None:
            return dataset.tree.is_document(where.path)
        return posixpath.basename(where.path) in DOCUMENT_NAMES

    def computed_depth(self, path: str) -> int:
        where = self._at_hand(path)
        if not isinstance(where, _Inside):
            return 0
        dataset = self.images.is_open(where.node)
        return dataset.tree.computed_depth(where.path) if dataset is not None else 0

    def identity(self, path: str, blocking: bool = True) -> str:
        """What names the bytes at ``path`` beyond the path itself (for HTTP validators): the identity of the
        node's files inside a node (a replaced file is another node), the version of the statistics."""
        where = self._resolve(path, blocking)
        if isinstance(where, _Inside):
            return repr(where.node.key)
        if isinstance(where, _Control):
            return repr(self._stats[0])
        return ""

    def _at_hand(self, path: str) -> _Directory | _Inside | _Control | None:
        """``path`` resolved if that needs no scan, else None: for the cheap questions that must not scan."""
        try:
            return self._resolve(path, False)
        except (WouldBlock, OSError):  # not at hand, or an image gone
            return None

    def read(self, path: str, offset: int, size: int, blocking: bool = True) -> FileBytes:
        where = self._file(path, blocking)
        if isinstance(where, _Control):
            return self._stats_bytes()[offset : offset + size]
        with self._image(where, blocking) as dataset:
            data = dataset.tree.read(where.path, offset, size, blocking)
        if offset == 0:
            self._count_chunk(dataset, where.path)
        return data

    def read_file(self, path: str, blocking: bool = True) -> FileBytes:
        where = self._file(path, blocking)
        if isinstance(where, _Control):
            return self._stats_bytes()
        with self._image(where, blocking) as dataset:
            data = dataset.tree.read_file(where.path, blocking)
        self._count_chunk(dataset, where.path)
        return data

    def _file(self, path: str, blocking: bool) -> _Inside | _Control:
        where = self._resolve(path, blocking)
        if where is None:
            raise FileNotFoundError(path)
        if isinstance(where, _Directory) or (isinstance(where, _Inside | _Control) and where.path == ""):
            raise IsADirectoryError(path)
        if isinstance(where, _Control) and where.path != STATS_FILE:
            raise FileNotFoundError(path)
        return where

    def _count_chunk(self, dataset: Dataset, path: str) -> None:
        if not dataset.tree.is_document(path):
            with self._counts_lock:
                self._chunks_served += 1

    # -- statistics -----------------------------------------------------------------------------------------

    def statistics(self) -> dict[str, Any]:
        cache = self.shared.chunks.stats()
        with self._counts_lock:
            errors = dict(self._errors)
            chunks = self._chunks_served
        return {
            "source": self.root,
            "cache": {
                "size_bytes": cache.size_bytes,
                "capacity_bytes": cache.capacity_bytes,
                "entries": cache.entries,
                "hits": cache.hits,
                "misses": cache.misses,
                "evictions": cache.evictions,
            },
            "images": {
                "open": self.images.open_count(),
                "max_open": self.images.max_open,
                "opened": self.images.opened,
                "closed": self.images.closed,
            },
            "chunks_served": chunks,
            "errors_by_source": errors,
            "uptime_s": round(time.time() - self.started, 3),
        }

    def _stats_bytes(self) -> bytes:
        made_at, document = self._stats
        now = time.monotonic()
        if now - made_at >= STATS_REFRESH_S:
            document = stats_document(self.statistics())
            self._stats = (now, document)
        return document

    def close(self) -> None:
        self.images.close()


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest


def _access(root: str, options: ServeOptions) -> TreeAccess:
    if is_url(root):
        from zarrfs.core.repository.remote import RemoteTree

        return RemoteTree(root, options.remote)
    return LocalTree(root)
