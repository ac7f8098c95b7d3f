"""The files served over HTTP: the tree's paths, and Neuroglancer precomputed under ``precomputed/``."""

from __future__ import annotations

from zarrfs.core.dataset import Dataset
from zarrfs.core.precomputed import INFO, Encoding, PrecomputedVolume
from zarrfs.core.served import Served
from zarrfs.core.tree import FileBytes
from zarrfs.frontends.http.semantics import ByteRange

PRECOMPUTED = "precomputed"
# Neuroglancer precomputed representations by their directory: raw chunks, and JPEG chunks where they fit.
PRECOMPUTED_ENCODINGS: dict[str, Encoding] = {f"{PRECOMPUTED}/jpeg": "jpeg", PRECOMPUTED: "raw"}


class ServedFiles:
    """Sizes and bytes by path, in the tree's calling convention (``blocking``, WouldBlock), for the request
    policy; raises FileNotFoundError, IsADirectoryError, RangeNotSatisfiable or what the tree raises."""

    def __init__(self, served: Served) -> None:
        self.tree = served.tree
        # Directory -> volume, longest directory first (so that precomputed/jpeg is not taken for a scale).
        # Precomputed volumes are one image's: a collection of series has none.
        self.precomputed: dict[str, PrecomputedVolume] = {}
        if isinstance(served, Dataset):
            info, levels = served.source.info, served.levels
            self.precomputed = {
                directory: PrecomputedVolume(info, levels, encoding)
                for directory, encoding in PRECOMPUTED_ENCODINGS.items()
                if PrecomputedVolume.supports(info, levels, encoding)
            }

    def _precomputed(self, path: str) -> tuple[PrecomputedVolume, str] | None:
        """The precomputed volume ``path`` lies in and the path inside it, if any."""
        for directory, volume in self.precomputed.items():
            if path.startswith(directory + "/"):
                return volume, path[len(directory) + 1 :]
        return None

    def computed_depth(self, path: str) -> int:
        inside = self._precomputed(path)
        return inside[0].computed_depth(inside[1]) if inside else self.tree.computed_depth(path)

    def is_document(self, path: str) -> bool:
        """Metadata (JSON, small, cached briefly by clients) rather than chunk data."""
        inside = self._precomputed(path)
        return inside[1] == INFO if inside else self.tree.is_document(path)

    def fetch(
        self, path: str, byte_range: ByteRange | None, with_body: bool, blocking: bool = True
    ) -> tuple[int, tuple[int, int], FileBytes]:
        """The file's size, the ``[start, stop)`` bytes to send, and those bytes (if ``with_body``)."""
        inside = self._precomputed(path)
        if inside:
            # Made whole even without a body: a JPEG chunk's size is known only once encoded.
            data = inside[0].read_file(inside[1], blocking)
            start, stop = byte_range.span(len(data)) if byte_range else (0, len(data))
            return len(data), (start, stop), data[start:stop] if with_body else b""
        entry = self.tree.stat(path, blocking)
        if entry is None:
            raise FileNotFoundError(path)
        if entry.is_dir:
            raise IsADirectoryError(path)
        start, stop = byte_range.span(entry.size) if byte_range else (0, entry.size)
        body: FileBytes = self.tree.read(path, start, stop - start, blocking) if with_body else b""
        return entry.size, (start, stop), body
