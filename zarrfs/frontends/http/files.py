"""The files served over HTTP: the tree's paths, and Neuroglancer precomputed under ``precomputed/``."""

from __future__ import annotations

from zarrfs.core.dataset import Dataset
from zarrfs.core.precomputed import PrecomputedVolume
from zarrfs.core.tree import FileBytes
from zarrfs.frontends.http.semantics import ByteRange

PRECOMPUTED = "precomputed"


class ServedFiles:
    """Sizes and bytes by path, in the tree's calling convention (``blocking``, WouldBlock), for the request
    policy; raises FileNotFoundError, IsADirectoryError, RangeNotSatisfiable or what the tree raises."""

    def __init__(self, dataset: Dataset) -> None:
        self.tree = dataset.tree
        info = dataset.source.info
        self.precomputed = (
            PrecomputedVolume(info, dataset.levels) if PrecomputedVolume.supports(info) else None
        )

    def _precomputed_path(self, path: str) -> str | None:
        """The path inside the precomputed representation, if ``path`` is under it."""
        head, _, rest = path.partition("/")
        return rest if head == PRECOMPUTED and self.precomputed is not None else None

    def computed_depth(self, path: str) -> int:
        inner = self._precomputed_path(path)
        if inner is not None and self.precomputed is not None:
            return self.precomputed.computed_depth(inner)
        return self.tree.computed_depth(path)

    def is_document(self, path: str) -> bool:
        """Metadata (JSON, small, cached briefly by clients) rather than chunk data."""
        return self.tree.is_document(path) or self._precomputed_path(path) == "info"

    def fetch(
        self, path: str, byte_range: ByteRange | None, with_body: bool, blocking: bool = True
    ) -> tuple[int, tuple[int, int], FileBytes]:
        """The file's size, the ``[start, stop)`` bytes to send, and those bytes (if ``with_body``)."""
        inner = self._precomputed_path(path)
        if inner is not None and self.precomputed is not None:
            size = self.precomputed.size(inner)
            start, stop = byte_range.span(size) if byte_range else (0, size)
            data = self.precomputed.read_file(inner, blocking) if with_body else b""
            return size, (start, stop), data[start:stop]
        entry = self.tree.stat(path, blocking)
        if entry is None:
            raise FileNotFoundError(path)
        if entry.is_dir:
            raise IsADirectoryError(path)
        start, stop = byte_range.span(entry.size) if byte_range else (0, entry.size)
        data = self.tree.read(path, start, stop - start, blocking) if with_body else b""
        return entry.size, (start, stop), data
