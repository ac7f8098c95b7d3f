"""An in-process, read-only zarr-python store over the virtual tree, for use without FUSE."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from typing import Any

from zarr.abc.store import ByteRequest, OffsetByteRequest, RangeByteRequest, Store, SuffixByteRequest
from zarr.core.buffer import Buffer, BufferPrototype, default_buffer_prototype

from zarrfs.core.options import serve_options
from zarrfs.core.requests import DEFAULT_TIMEOUT_S, RequestPolicy
from zarrfs.core.served import Served, open_served
from zarrfs.core.tree import FileBytes, Tree


def _byte_slice(size: int, byte_range: ByteRequest | None) -> slice:
    if byte_range is None:
        return slice(0, size)
    if isinstance(byte_range, RangeByteRequest):
        return slice(byte_range.start, byte_range.end)
    if isinstance(byte_range, OffsetByteRequest):
        return slice(byte_range.offset, size)
    if isinstance(byte_range, SuffixByteRequest):
        return slice(max(0, size - byte_range.suffix), size)
    raise TypeError(f"unexpected byte range {byte_range!r}")


def _walk_files(tree: Tree, directory: str) -> Iterator[str]:
    for name in tree.listdir(directory):
        path = f"{directory}/{name}" if directory else name
        entry = tree.stat(path)
        if entry is not None and entry.is_dir:
            yield from _walk_files(tree, path)
        else:
            yield path


class ZarrfsStore(Store):
    """The served OME-Zarr hierarchy of one source as a zarr-python store; chunks are made on demand in
    worker threads, so zarr's concurrent reads decode source tiles in parallel.

    Requests follow the same policy as a mount's (zarrfs.core.requests): documents and cached chunks are
    answered on the event loop, the rest in workers; a request over ``timeout`` seconds raises
    RequestTimeout (a TimeoutError) and its work is dropped."""

    supports_writes = False
    supports_deletes = False
    supports_partial_writes = False
    supports_listing = True

    def __init__(self, dataset: Served, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        super().__init__(read_only=True)
        self.dataset = dataset
        self._tree = dataset.tree
        self._requests = RequestPolicy(dataset.tree, timeout)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ZarrfsStore) and other.dataset is self.dataset

    def __hash__(self) -> int:
        return id(self.dataset)

    def __repr__(self) -> str:
        return f"ZarrfsStore({self.dataset.path!r})"

    def _file_bytes(
        self, key: str, byte_range: ByteRequest | None, blocking: bool = True
    ) -> FileBytes | None:
        """``byte_range`` of the file ``key``, None where there is none (a missing key, for zarr); called by
        the request policy (not zarr's private ``_get_bytes_sync``, whose signature differs)."""
        try:
            data = self._tree.read_file(key, blocking)
        except (FileNotFoundError, IsADirectoryError):
            return None
        return data[_byte_slice(len(data), byte_range)]

    async def get(
        self, key: str, prototype: BufferPrototype | None = None, byte_range: ByteRequest | None = None
    ) -> Buffer | None:
        prototype = prototype or default_buffer_prototype()
        data = await self._requests.answer_async(self._file_bytes, key, byte_range)
        # A read-only view of the cached chunk, not a copy: numpy refuses any write to it.
        return None if data is None else prototype.buffer.from_bytes(data)

    async def get_partial_values(
        self, prototype: BufferPrototype, key_ranges: Iterable[tuple[str, ByteRequest | None]]
    ) -> list[Buffer | None]:
        return list(await asyncio.gather(*(self.get(key, prototype, rng) for key, rng in key_ranges)))

    async def exists(self, key: str) -> bool:
        entry = await self._requests.answer_async(self._tree.stat, key)
        return entry is not None and not entry.is_dir

    async def set(self, key: str, value: Buffer) -> None:
        self._check_writable()

    async def delete(self, key: str) -> None:
        self._check_writable()

    async def list(self) -> AsyncIterator[str]:
        for key in _walk_files(self._tree, ""):
            yield key

    async def list_prefix(self, prefix: str) -> AsyncIterator[str]:
        # Walk only below the deepest directory the prefix names, then filter on the rest of it.
        directory = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        entry = self._tree.stat(directory)
        if entry is None or not entry.is_dir:
            return
        for key in _walk_files(self._tree, directory):
            if key.startswith(prefix):
                yield key

    async def list_dir(self, prefix: str) -> AsyncIterator[str]:
        directory = prefix.rstrip("/")
        entry = self._tree.stat(directory)
        if entry is None or not entry.is_dir:
            return
        for name in self._tree.listdir(directory):
            yield name

    def close(self) -> None:
        super().close()
        self._requests.close()
        self.dataset.close()


def open_store(
    source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    timeout: float = DEFAULT_TIMEOUT_S,
    **options: Any,
) -> ZarrfsStore:
    """Serve ``source`` in-process: ``zarr.open_group(zarrfs.open_store("x.tif"), mode="r")``. A glob string
    (``"sections/*.tif"``) or a list of paths is a file sequence (``sequence_axis="t"`` stacks it along t). A
    source of several images (series) without ``series`` (or ``dataset``) is served in the bioformats2raw
    layout: series i at ``"i/"``.

    Takes the same options as ``zarrfs mount`` (``series``, ``chunks``, ``compressor``, ``clevel``,
    ``cache_size``, ``timeout``, ``ngff``: "0.4" by default, "0.5" or "all"), e.g. ``open_store("x.tif",
    compressor="blosc-lz4", cache_size="1GiB")``. A read that takes longer than ``timeout`` seconds (positive,
    finite) raises ``zarrfs.core.requests.RequestTimeout``, a TimeoutError, where a mount answers EIO.
    """
    dataset = open_served(source, serve_options(**options))
    try:
        return ZarrfsStore(dataset, timeout)
    except BaseException:
        dataset.close()
        raise
