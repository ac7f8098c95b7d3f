"""A source named by URL: an object, opened on first use and shared by the readers that sniff it and the one
that opens it; or, where there is no object (403 or 404), maybe a prefix a directory reader (Zarr) opens."""

from __future__ import annotations

import threading

from zarrfs.sources.remote.blocks import BlockCache
from zarrfs.sources.remote.disktier import disk_blocks
from zarrfs.sources.remote.file import RemoteFile
from zarrfs.sources.remote.identity import RemoteError
from zarrfs.sources.remote.objects import RemoteObject
from zarrfs.sources.remote.options import RemoteOptions

# Blocks kept while readers decide whether the source is theirs (the reader that opens it resizes the cache).
SNIFF_CACHE_BYTES = 8 * 2**20


class RemoteLocation:
    def __init__(self, url: str, options: RemoteOptions) -> None:
        self.url = url  # may hold credentials: never shown
        self.options = options
        self._file: RemoteFile | None = None
        self.missing: RemoteError | None = None  # why there is no object at the URL (403, 404)
        # What a reader keeps between claiming the source and opening it (the Zarr reader's documents read).
        self.reader_state: dict[str, object] = {}
        self._lock = threading.Lock()

    def is_object(self) -> bool:
        """Whether there is an object at the URL (opening it); False on 403 or 404, kept in ``missing``, and
        for a URL ending in ``/``, which names a prefix (an HTTP server may answer it with an index page)."""
        if self.url.split("?", 1)[0].endswith("/"):
            return False
        if self.missing is None:
            try:
                self.file()
            except RemoteError as error:
                if error.status not in (403, 404):
                    raise
                self.missing = error
        return self.missing is None

    def __repr__(self) -> str:
        return "RemoteLocation(...)"

    def file(self) -> RemoteFile:
        """The object as opened (on the first call: one HEAD, or a one-line SourceError)."""
        with self._lock:
            if self._file is None:
                remote = RemoteObject.open(self.url, self.options)
                options = self.options
                disk = disk_blocks(
                    options.disk_cache, options.disk_cache_size, self.url, remote.identity, remote.name
                )
                self._file = RemoteFile(remote, BlockCache(remote, SNIFF_CACHE_BYTES, disk=disk))
            return self._file

    def header(self, length: int) -> bytes:
        """The first ``length`` bytes, with the read-ahead a parser gets: usually every request sniffing and
        parsing the header needs."""
        stream = self.file().stream()
        return stream.read(length) or b""

    def open_file(self, cache_bytes: int) -> RemoteFile:
        """The file for the reader that opens the source, its blocks kept within ``cache_bytes``."""
        file = self.file()
        file.blocks.resize(max(cache_bytes, file.blocks.block_bytes * 8))
        return file


class ProbedLocation(RemoteLocation):
    """An object whose identity and first bytes one request fetched (a repository's listing): readers
    sniff those; a read beyond them is a pinned range request."""

    def __init__(self, url: str, options: RemoteOptions, remote: RemoteObject, first: bytes) -> None:
        super().__init__(url, options)
        self.first = first
        # Blocks of the probe's length: the first one is the probe.
        self._file = RemoteFile(remote, BlockCache(remote, SNIFF_CACHE_BYTES, max(len(first), 1)))

    def is_object(self) -> bool:
        return True

    def header(self, length: int) -> bytes:
        return self.first[:length]
