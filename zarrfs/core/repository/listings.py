"""Directory listings of a repository, kept while they are valid: a directory listed page by page (FUSE
readdir, 100,000 entries) is scanned once, not once a page.

A kept listing is used as it is for the access's ``recheck_s`` (RECHECK_S for a local directory, longer at a
URL); after that one stat of the directory says whether it is still valid (a directory at a URL has no such
version: it is listed again): its mtime moves whenever an entry is added, removed or renamed. An mtime within
MTIME_TRUST_S of now is not trusted (an entry added in the same clock tick as the scan leaves it unchanged),
and neither is a listing that hides files still being written once they may have settled. Files rewritten in
place leave the directory's mtime alone: their open image fails its next check (staleness) and the tree
calls ``invalidate``; and a listing is scanned again after RESCAN_S whatever the mtime says (for images whose
chunks are all cached, so that no read checks their files).

An image (or a directory) deleted or replaced stays "gone" for GONE_S, or until it is shown again: requests
for it and inside it fail (EIO) rather than find nothing (ENOENT), which a Zarr client takes for a chunk never
written and reads as zeros. Listings no longer show it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from zarrfs.core.dataset import Dataset, SharedCaches
from zarrfs.core.options import ServeOptions
from zarrfs.core.repository.access import TreeAccess
from zarrfs.core.repository.nodes import ImageNode, open_node
from zarrfs.core.repository.options import RepositoryOptions
from zarrfs.core.repository.scan import Listing, scan_directory
from zarrfs.core.tree import WouldBlock
from zarrfs.sources.identity import FileIdentity, change_since

log = logging.getLogger(__name__)

# A local listing is used this long before its directory's mtime is checked: new and deleted files show
# within this (plus the kernel's entry timeout), well within 2 s.
RECHECK_S = 0.5
MTIME_TRUST_S = 1.0
RESCAN_S = 10.0
# Listings kept; each holds a node per entry (a 100,000-entry directory's is about 30 MB).
KEPT_LISTINGS = 256
GONE_S = 30.0


class LocalTree(TreeAccess):
    """A local directory: readdir and a stat an entry (scan.py); files checked by their identity."""

    recheck_s = RECHECK_S

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.root_real = os.path.realpath(root)

    def version(self, directory: str) -> int | None:
        return os.stat(directory).st_mtime_ns

    def scan(self, directory: str, options: RepositoryOptions, previous: Listing | None) -> Listing:
        return scan_directory(directory, self.root_real, options, previous)

    def changed(self, node: ImageNode) -> bool:
        listed = zip(node.paths, node.identities, strict=True)
        return any(
            change_since(path, identity) is not None
            for path, identity in listed
            if isinstance(identity, FileIdentity)
        )

    def open(self, node: ImageNode, options: ServeOptions, shared: SharedCaches) -> Dataset:
        return open_node(node, options, shared)

    def mtime_ns(self) -> int:
        return os.stat(self.root).st_mtime_ns

    def relative(self, path: str) -> str:
        return os.path.relpath(path, self.root)


@dataclass
class _Kept:
    listing: Listing
    checked_at: float  # monotonic
    trusted: bool  # whether an unchanged mtime proves the listing still valid
    scanned_at: float  # monotonic


class Listings:
    """Scans on demand and keeps the results; ``on_gone`` gets the image nodes a rescan no longer shows
    (deleted or replaced files), whose open images are to be dropped."""

    def __init__(
        self, access: TreeAccess, options: RepositoryOptions, on_gone: Callable[[Iterable[ImageNode]], None]
    ) -> None:
        self.access = access
        self.options = options
        self.on_gone = on_gone
        self._kept: OrderedDict[str, _Kept] = OrderedDict()
        self._lock = threading.Lock()
        self._scanning: dict[str, threading.Lock] = {}

    def get(self, directory: str, blocking: bool = True) -> Listing:
        """The listing of ``directory``; FileNotFoundError once it is gone, WouldBlock for a non-blocking
        call that would need a stat or a scan."""
        kept = self._fresh(directory)
        if kept is not None:
            return kept.listing
        if not blocking:
            raise WouldBlock
        with self._lock:
            scanning = self._scanning.setdefault(directory, threading.Lock())
        with scanning:  # one scan of a directory at a time; those waiting use its result
            kept = self._fresh(directory)
            if kept is not None:
                return kept.listing
            with self._lock:
                kept = self._kept.get(directory)
            try:
                version = self.access.version(directory)
            except FileNotFoundError:
                self._drop(directory)
                raise
            now = time.monotonic()
            if (
                kept is not None
                and kept.trusted
                and version is not None
                and version == kept.listing.mtime_ns
                and time.time() < kept.listing.settles_at
                and now - kept.scanned_at < RESCAN_S
            ):
                kept.checked_at = now
                return kept.listing
            listing = self._scan(directory, kept.listing if kept is not None else None)
            if kept is not None:
                listing.gone = _gone_names(kept.listing, listing)
            trusted = time.time_ns() - listing.mtime_ns > MTIME_TRUST_S * 1e9
            with self._lock:
                self._kept[directory] = _Kept(listing, now, trusted, now)
                self._kept.move_to_end(directory)
                while len(self._kept) > KEPT_LISTINGS:
                    self._kept.popitem(last=False)
            if kept is not None:
                self._gone(kept.listing, listing)
            return listing

    def invalidate(self, directory: str) -> None:
        """Scan ``directory`` again at its next use (an image in it changed)."""
        with self._lock:
            kept = self._kept.get(directory)
            if kept is not None:
                kept.trusted = False
                kept.checked_at = -self.access.recheck_s

    def _fresh(self, directory: str) -> _Kept | None:
        with self._lock:
            kept = self._kept.get(directory)
            if kept is not None and time.monotonic() - kept.checked_at < self.access.recheck_s:
                self._kept.move_to_end(directory)
                return kept
        return None

    def _scan(self, directory: str, previous: Listing | None) -> Listing:
        try:
            return self.access.scan(directory, self.options, previous)
        except FileNotFoundError:
            self._drop(directory)
            raise
        except OSError as error:
            # Not readable (permissions changed since its parent was listed): shown empty, said once.
            if previous is None or previous.children:
                log.error("cannot list %s: %s; shown empty", directory, error.strerror or error)
            return Listing({}, [], {}, 0, float("inf"))

    def _drop(self, directory: str) -> None:
        with self._lock:
            kept = self._kept.pop(directory, None)
        if kept is not None:
            self._gone(kept.listing, None)

    def _gone(self, before: Listing, after: Listing | None) -> None:
        remaining = (
            {node.key for node in after.children.values() if isinstance(node, ImageNode)} if after else set()
        )
        gone = [
            node
            for node in before.children.values()
            if isinstance(node, ImageNode) and node.key not in remaining
        ]
        if gone:
            self.on_gone(gone)


def _gone_names(before: Listing, after: Listing) -> dict[str, float]:
    """The names ``before`` showed that ``after`` does not (images, and directories that may have held
    images), with the time until which they count as gone; names gone already keep their time, until shown
    again."""
    now = time.monotonic()
    gone = {name: until for name, until in before.gone.items() if until > now and name not in after.children}
    for name in before.children.keys() - after.children.keys():
        gone[name] = now + GONE_S
    return gone
