"""The open images of a repository: at most ``max_open`` at once, least recently used closed first and
reopened on their next use. An image in use by a request (a reference) is never closed under it: it is
closed once the last request lets go. An image that cannot be opened fails its own node only, with one log
line, until its files change."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass

from zarrfs.core.dataset import Dataset
from zarrfs.core.levels import ChunkReadError
from zarrfs.core.repository.nodes import ImageNode
from zarrfs.core.tree import WouldBlock
from zarrfs.lru import without_tracebacks

log = logging.getLogger(__name__)

# Failures remembered (by the identity of the files that failed): a file fixed is a new identity.
KEPT_FAILURES = 4096


class ImageOpenError(ChunkReadError):
    """The node's image cannot be opened: an I/O error for requests inside it (logged once, when it
    failed)."""

    def __init__(self, node: ImageNode, reason: str) -> None:
        super().__init__(f"{node.label} cannot be served: {reason}")
        self.reason = reason


@dataclass
class _Slot:
    dataset: Dataset
    users: int = 0
    retired: bool = False  # no longer listed: closed when its last user lets go


class OpenImages:
    def __init__(self, opener: Callable[[ImageNode], Dataset], max_open: int) -> None:
        self._opener = opener
        self.max_open = max_open
        self._open: OrderedDict[Hashable, _Slot] = OrderedDict()
        self._failed: OrderedDict[Hashable, str] = OrderedDict()
        self._opening: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()
        self.opened = 0
        self.closed = 0

    @contextlib.contextmanager
    def using(self, node: ImageNode, blocking: bool = True) -> Iterator[Dataset]:
        """The node's open image, held open until the block ends; opened now if need be, unless not
        ``blocking`` (then WouldBlock). ImageOpenError when it cannot be opened."""
        slot = self._take(node, blocking)
        try:
            yield slot.dataset
        finally:
            self._let_go(slot)

    def is_open(self, node: ImageNode) -> Dataset | None:
        with self._lock:
            slot = self._open.get(node.key)
            return slot.dataset if slot is not None else None

    def failures(self) -> dict[str, str]:
        with self._lock:
            return {str(key): reason for key, reason in self._failed.items()}

    def open_count(self) -> int:
        with self._lock:
            return len(self._open)

    def _held(self, key: Hashable) -> _Slot | None:
        """The open slot of ``key``, taken by the caller; under the lock."""
        slot = self._open.get(key)
        if slot is not None:
            self._open.move_to_end(key)
            slot.users += 1
        return slot

    def _ready(self, node: ImageNode) -> _Slot | None:
        """The node's open slot, taken by the caller, or None; ImageOpenError when its open failed. Under the
        lock."""
        slot = self._held(node.key)
        if slot is None and node.key in self._failed:
            raise ImageOpenError(node, self._failed[node.key])
        return slot

    def _take(self, node: ImageNode, blocking: bool) -> _Slot:
        key = node.key
        with self._lock:
            slot = self._ready(node)
            if slot is not None:
                return slot
            if not blocking:
                raise WouldBlock
            opening = self._opening.setdefault(key, threading.Lock())
        with opening:  # one open of a node at a time; those waiting use its result
            with self._lock:
                slot = self._ready(node)
                if slot is not None:
                    return slot
            try:
                dataset = self._opener(node)
            except Exception as error:
                reason = str(error) or type(error).__name__
                log.error("%s cannot be served: %s", node.label, reason)
                with self._lock:
                    self._opening.pop(key, None)
                    self._failed[key] = reason
                    while len(self._failed) > KEPT_FAILURES:
                        self._failed.popitem(last=False)
                raise without_tracebacks(ImageOpenError(node, reason)) from None
            with self._lock:
                self._opening.pop(key, None)
                slot = self._open[key] = _Slot(dataset, users=1)
                self.opened += 1
                surplus = self._surplus()
        self._close(surplus)
        return slot

    def _surplus(self) -> list[Dataset]:
        """Take out the least recently used images nobody uses beyond ``max_open``; under the lock."""
        surplus = []
        for key in list(self._open):
            if len(self._open) <= self.max_open:
                break
            if self._open[key].users == 0:
                surplus.append(self._open.pop(key).dataset)
        return surplus

    def _let_go(self, slot: _Slot) -> None:
        with self._lock:
            slot.users -= 1
            closing = [slot.dataset] if slot.retired and slot.users == 0 else self._surplus()
        self._close(closing)

    def retire(self, nodes: Iterable[ImageNode]) -> None:
        """Drop the open images of ``nodes`` (no longer listed as they were): now, or once unused."""
        closing = []
        with self._lock:
            for node in nodes:
                slot = self._open.pop(node.key, None)
                self._failed.pop(node.key, None)
                if slot is not None:
                    slot.retired = True
                    if slot.users == 0:
                        closing.append(slot.dataset)
        self._close(closing)

    def _close(self, datasets: list[Dataset]) -> None:
        for dataset in datasets:
            try:
                dataset.close()
            except Exception as error:  # a source that fails to close must not fail the request
                log.warning("closing %s failed: %s", dataset.source.path, error)
            with self._lock:
                self.closed += 1

    def close(self) -> None:
        with self._lock:
            slots, self._open = list(self._open.values()), OrderedDict()
        self._close([slot.dataset for slot in slots])
