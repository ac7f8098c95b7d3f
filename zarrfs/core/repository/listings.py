"""Directory listings of a repository, kept while they are valid: a directory listed page by page (FUSE
readdir, 100,000 entries) is scanned once, not once a page.

A kept listing is used as it is for RECHECK_S; after that one stat of the directory says whether it is still
valid: its mtime moves whenever an entry is added, removed or renamed. An mtime within MTIME_TRUST_S of now
is not trusted (an entry added in the same clock tick as the scan leaves it unchanged), and neither is a
listing that hides files still being written once they may have settled. Files rewritten in place leave the
directory's mtime alone: their open image fails its next check (staleness) and the tree calls ``invalidate``;
and a listing is scanned again after RESCAN_S whatever the mtime says (for images whose chunks are all
cached, so that no read checks their files).

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

from zarrfs.core.repository.nodes import ImageNode
from zarrfs.core.repository.options import RepositoryOptions
from zarrfs.core.repository.scan import Listing, scan_directory
from zarrfs.core.tree import WouldBlock

log = logging.getLogger(__name__)

# New and deleted files show within this (plus the kernel's entry timeout): well within 2 s.
RECHECK_S = 0.5
MTIME_TRUST_S = 1.0
RESCAN_S = 10.0
# Listings kept; each holds a node per entry (a 100,000-entry directory's is about 30 MB).
KEPT_LISTINGS = 256
GONE_S = 30.0


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
        self, root: str, options: RepositoryOptions, on_gone: Callable[[Iterable[ImageNode]], None]
    ) -> None:
        self.root_real = os.path.realpath(root)
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
                status = os.stat(directory)
            except FileNotFoundError:
                self._drop(directory)
                raise
            now = time.monotonic()
            if (
                kept is not None
                and kept.trusted
                and status.st_mtime_ns == kept.listing.mtime_ns
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
                kept.checked_at = -RECHECK_S

    def _fresh(self, directory: str) -> _Kept | None:
        with self._lock:
            kept = self._kept.get(directory)
            if kept is not None and time.monotonic() - kept.checked_at < RECHECK_S:
                self._kept.move_to_end(directory)
                return kept
        return None

    def _scan(self, directory: str, previous: Listing | None) -> Listing:
        try:
            return scan_directory(directory, self.root_real, self.options, previous)
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
