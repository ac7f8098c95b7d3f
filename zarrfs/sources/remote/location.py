"""A source named by URL: the object opened on first use, shared by the readers that sniff it and the one
that opens it."""

from __future__ import annotations

import threading

from zarrfs.sources.remote.blocks import BlockCache
from zarrfs.sources.remote.file import RemoteFile
from zarrfs.sources.remote.objects import RemoteObject
from zarrfs.sources.remote.options import RemoteOptions

# Blocks kept while readers decide whether the source is theirs (the reader that opens it resizes the cache).
SNIFF_CACHE_BYTES = 8 * 2**20


class RemoteLocation:
    def __init__(self, url: str, options: RemoteOptions) -> None:
        self._url = url  # may hold credentials: never shown
        self.options = options
        self._file: RemoteFile | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return "RemoteLocation(...)"

    def file(self) -> RemoteFile:
        """The object as opened (on the first call: one HEAD, or a one-line SourceError)."""
        with self._lock:
            if self._file is None:
                remote = RemoteObject.open(self._url, self.options)
                self._file = RemoteFile(remote, BlockCache(remote, SNIFF_CACHE_BYTES))
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
