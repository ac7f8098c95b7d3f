"""An in-process, read-only zarr-python store over the virtual tree, for use without FUSE.

A store made by ``open_store`` can be pickled, as dask.distributed pickles the zarr array that holds it into
every task: it pickles as what opened it (the source's absolute paths, the time limit, the options and the
identity of each source file), and the copy opens the source again where it is first used. All copies
unpickled in one process share one opened source and cache, and a copy refuses to serve a source that is
missing there or is not the same file any more (one line, naming the host).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import threading
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from zarr.abc.store import ByteRequest, OffsetByteRequest, RangeByteRequest, Store, SuffixByteRequest
from zarr.core.buffer import Buffer, BufferPrototype, default_buffer_prototype

from zarrfs.core.options import ServeOptions, serve_options
from zarrfs.core.repository import Repository, RepositoryOptions, repository_options
from zarrfs.core.requests import DEFAULT_TIMEOUT_S, RequestPolicy
from zarrfs.core.served import Served, open_served, served_images
from zarrfs.core.tree import FileBytes, ServedTree
from zarrfs.errors import SourceError, ZarrfsError
from zarrfs.sources.identity import FileIdentity
from zarrfs.sources.remote import is_url
from zarrfs.sources.remote.identity import ObjectIdentity

SourceArgument = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]
# What tells a source file, or an object at a URL, from a changed one.
Identity = FileIdentity | ObjectIdentity

# Stores unpickled in one process stay open for later tasks, up to this many (least recently unpickled
# dropped first); a dropped one is closed once nothing holds it any more. Each holds at most its cache size.
REOPENED_STORES_KEPT = 4


@dataclass(frozen=True)
class StoreOpening:
    """What a store was opened from, as another process opens it again: the source with absolute paths (a
    worker may have another working directory), the time limit, the parsed options (a ``sequence_list`` is
    absolute in them too), and the files it served: the identity of each watched file as the watch took it
    before the open (named when it changed), and a fingerprint of every file it reads (a sequence's too)."""

    source: str | tuple[str, ...]
    timeout: float
    options: ServeOptions
    repository: RepositoryOptions
    watched: tuple[tuple[str, Identity], ...]
    fingerprint: str

    def __hash__(self) -> int:  # the options hold dicts; equal openings have equal sources and time limits
        return hash((self.source, self.timeout))


def _absolute(source: SourceArgument) -> str | tuple[str, ...]:
    """``source`` with every path absolute, without resolving symbolic links or ``..`` (as the kernel would);
    a glob pattern stays a pattern, a URL a URL."""

    def absolute(path: str | os.PathLike[str]) -> str:
        if is_url(os.fspath(path)):
            return os.fspath(path)
        return os.path.join(os.getcwd(), os.fspath(path))  # an absolute path stays as it is

    if isinstance(source, str | os.PathLike):
        return absolute(source)
    return tuple(absolute(path) for path in source)


@dataclass(frozen=True)
class _Served:
    """An opened source and the request policy over its tree."""

    dataset: Served
    requests: RequestPolicy

    def file_bytes(self, key: str, byte_range: ByteRequest | None, blocking: bool = True) -> FileBytes | None:
        """``byte_range`` of the file ``key``, None where there is none (a missing key, for zarr); called by
        the request policy (not zarr's private ``_get_bytes_sync``, whose signature differs)."""
        try:
            data = self.dataset.tree.read_file(key, blocking)
        except (FileNotFoundError, IsADirectoryError):
            return None
        return data[_byte_slice(len(data), byte_range)]

    def close(self) -> None:
        self.requests.close()
        self.dataset.close()


def _serve(
    source: str | tuple[str, ...], timeout: float, options: ServeOptions, repository: RepositoryOptions
) -> _Served:
    dataset = open_served(source, options, repository)  # the one place where a store opens its source
    try:
        return _Served(dataset, RequestPolicy(dataset.tree, timeout))
    except BaseException:
        dataset.close()
        raise


def _identity(path: str) -> Identity | None:
    """The identity of a file the watch does not hold (None for an object at a URL: its reader pins it)."""
    if is_url(path):
        return None
    try:
        return FileIdentity.of(path)
    except OSError as error:
        raise SourceError(f"cannot check source file {path}: {error.strerror}") from None


def _watched(served: Served) -> dict[str, Identity]:
    """The identity of each watched file (or object at a URL) as the watch took it before the open. None for
    a repository: it is live (files come and go, each image node checks its own), and a copy serves the
    directory as it is."""
    if isinstance(served, Repository):
        return {}
    return {
        path: opened if isinstance(opened, FileIdentity) else opened.identity
        for image in served_images(served)
        for path, opened in image.watch.opened.items()
    }


def _without_device(identity: Identity | None) -> tuple[object, ...]:
    """What names a file alike on every machine: one file on a shared file system has another device number
    on each (NFS numbers its mounts per client); inode, size and times are the file's own."""
    if isinstance(identity, FileIdentity):
        return tuple(identity._replace(device=0))
    return (identity,)


def _files(served: Served) -> tuple[str, ...]:
    return () if isinstance(served, Repository) else served.files()


def _fingerprint(served: Served) -> str:
    """A digest of the path and identity of every file ``served`` reads: watched files as the watch took them
    before the open, the others (a sequence's, which the sequence checks itself) as they are now. Device
    numbers are left out: one file on a shared file system has another on each machine (NFS numbers its
    mounts per client); inode, size and times are the file's own."""
    digest = hashlib.sha256()
    watched = _watched(served)
    for path in _files(served):
        identity = watched[path] if path in watched else _identity(path)
        digest.update(repr((path, *_without_device(identity))).encode())
    return digest.hexdigest()


def _change(before: Identity, now: Identity) -> str | None:
    """What changed from ``before`` to ``now``, in words, device numbers left out (see _without_device)."""
    if isinstance(before, FileIdentity) and isinstance(now, FileIdentity):
        return before._replace(device=now.device).change_to(now)
    if isinstance(before, ObjectIdentity) and isinstance(now, ObjectIdentity):
        return before.change_to(now)
    return "is now another kind of source"


def _check_same_files(opening: StoreOpening, served: Served) -> None:
    """Raise SourceError unless ``served`` reads the files ``opening`` was made from, unchanged."""
    now = _watched(served)
    for path, identity in opening.watched:
        if path not in now:
            raise SourceError(f"source {path} is no longer among its files")
        change = _change(identity, now[path])
        if change is not None:
            raise SourceError(f"source {path} {change} since the store was opened")
    if _fingerprint(served) != opening.fingerprint:
        raise SourceError(
            f"its {len(_files(served))} files are not those it was opened with: one was added, "
            "removed, replaced or modified since"
        )


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


def _walk_files(tree: ServedTree, directory: str) -> Iterator[str]:
    for name in tree.listdir(directory):
        path = f"{directory}/{name}" if directory else name
        entry = tree.stat(path)
        if entry is not None and entry.is_dir:
            yield from _walk_files(tree, path)
        else:
            yield path


class ZarrfsStore(Store):
    """The served OME-Zarr hierarchy of one source (or a repository's tree of them) as a zarr-python store;
    chunks are made on demand in worker threads, so zarr's concurrent reads decode source tiles in parallel.

    Requests follow the same policy as a mount's (zarrfs.core.requests): documents and cached chunks are
    answered on the event loop, the rest in workers; a request over ``timeout`` seconds raises
    RequestTimeout (a TimeoutError) and its work is dropped."""

    supports_writes = False
    supports_deletes = False
    supports_partial_writes = False
    supports_listing = True

    def __init__(self, dataset: Served, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        """Serve ``dataset`` (such a store cannot be pickled: ``open_store``'s can)."""
        self._start(None, _Served(dataset, RequestPolicy(dataset.tree, timeout)))

    @classmethod
    def _of(cls, opening: StoreOpening, served: _Served | None) -> ZarrfsStore:
        """A store that can be pickled; unless ``served``, it opens ``opening`` when first used (an unpickled
        store: a dask scheduler unpickles task graphs too, and must not open their sources)."""
        store = cls.__new__(cls)
        store._start(opening, served)
        return store

    def _start(self, opening: StoreOpening | None, served: _Served | None) -> None:
        super().__init__(read_only=True)
        self._opening = opening
        self._open_lock = threading.Lock()
        self._served: _Served | None = None
        self._failure: str | None = None  # why reopening failed
        self._finalizer: weakref.finalize[Any, Any] | None = None
        if served is not None:
            self._keep(served)

    def _keep(self, served: _Served) -> None:
        self._served = served
        # Closed when the store is, or when it is garbage (an unpickled store dropped by every task).
        self._finalizer = weakref.finalize(self, served.close)

    def _serving(self) -> _Served:
        with self._open_lock:
            served = self._served
            if served is None:
                if self._failure is not None:  # the reads of one array that wait for the open fail with it
                    raise SourceError(self._failure)
                served = self._reopen()
                self._keep(served)
            return served

    def _reopen(self) -> _Served:
        opening = self._opening
        assert opening is not None  # only a store with an opening is made unopened
        try:
            served = _serve(opening.source, opening.timeout, opening.options, opening.repository)
            try:
                _check_same_files(opening, served.dataset)
            except BaseException:
                served.close()
                raise
        except ZarrfsError as error:
            self._failure = (
                f"the zarrfs store of {opening.source} cannot be reopened on {socket.gethostname()}: {error}"
            )
            self._forget()  # the next copy unpickled here tries again (the source may be there by then)
            raise SourceError(self._failure) from None
        return served

    def _forget(self) -> None:
        """Hand this store out no more to copies unpickled in this process."""
        with _reopened_lock:
            if self._opening is not None and _reopened.get(self._opening) is self:
                del _reopened[self._opening]

    async def _served_async(self) -> _Served:
        """The opened source; a first open runs in a worker thread, off the event loop."""
        served = self._served
        return served if served is not None else await asyncio.to_thread(self._serving)

    @property
    def dataset(self) -> Served:
        return self._serving().dataset

    def __reduce__(self) -> tuple[Any, ...]:
        if self._opening is None:
            raise TypeError(
                "only a store made by zarrfs.open_store can be pickled (it records what to reopen)"
            )
        return _unpickled, (self._opening,)

    def __eq__(self, other: object) -> bool:
        """Stores of one opening serve the same bytes: equal, also across processes; others are equal when
        they serve the same dataset."""
        if not isinstance(other, ZarrfsStore):
            return False
        if self._opening is not None or other._opening is not None:
            return self._opening == other._opening
        return self.dataset is other.dataset

    def __hash__(self) -> int:
        return id(self.dataset) if self._opening is None else hash(self._opening)

    def __repr__(self) -> str:
        if self._opening is not None:
            return f"ZarrfsStore({self._opening.source!r})"
        return f"ZarrfsStore({self.dataset.path!r})"

    async def get(
        self, key: str, prototype: BufferPrototype | None = None, byte_range: ByteRequest | None = None
    ) -> Buffer | None:
        prototype = prototype or default_buffer_prototype()
        served = await self._served_async()
        data = await served.requests.answer_async(served.file_bytes, key, byte_range)
        # A read-only view of the cached chunk, not a copy: numpy refuses any write to it.
        return None if data is None else prototype.buffer.from_bytes(data)

    async def get_partial_values(
        self, prototype: BufferPrototype, key_ranges: Iterable[tuple[str, ByteRequest | None]]
    ) -> list[Buffer | None]:
        return list(await asyncio.gather(*(self.get(key, prototype, rng) for key, rng in key_ranges)))

    async def exists(self, key: str) -> bool:
        served = await self._served_async()
        entry = await served.requests.answer_async(served.dataset.tree.stat, key)
        return entry is not None and not entry.is_dir

    async def set(self, key: str, value: Buffer) -> None:
        self._check_writable()

    async def delete(self, key: str) -> None:
        self._check_writable()

    async def list(self) -> AsyncIterator[str]:
        tree = (await self._served_async()).dataset.tree
        for key in _walk_files(tree, ""):
            yield key

    async def list_prefix(self, prefix: str) -> AsyncIterator[str]:
        # Walk only below the deepest directory the prefix names, then filter on the rest of it.
        directory = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        tree = (await self._served_async()).dataset.tree
        entry = tree.stat(directory)
        if entry is None or not entry.is_dir:
            return
        for key in _walk_files(tree, directory):
            if key.startswith(prefix):
                yield key

    async def list_dir(self, prefix: str) -> AsyncIterator[str]:
        directory = prefix.rstrip("/")
        tree = (await self._served_async()).dataset.tree
        entry = tree.stat(directory)
        if entry is None or not entry.is_dir:
            return
        for name in tree.listdir(directory):
            yield name

    def close(self) -> None:
        super().close()
        self._forget()  # copies unpickled later open the source again
        if self._finalizer is not None:
            self._finalizer()


def open_store(
    source: SourceArgument,
    timeout: float = DEFAULT_TIMEOUT_S,
    **options: Any,
) -> ZarrfsStore:
    """Serve ``source`` in-process: ``zarr.open_group(zarrfs.open_store("x.tif"), mode="r")``. A glob string
    (``"sections/*.tif"``) or a list of paths is a file sequence (``sequence_axis="t"`` stacks it along t). A
    source of several images (series) without ``series`` (or ``dataset``) is served in the bioformats2raw
    layout: series i at ``"i/"``.

    Takes the same options as ``zarrfs mount`` (``series``, ``chunks``, ``compressor``, ``clevel``,
    ``cache_size``, ``timeout``, ``ngff``: "0.4" by default, "0.5" or "all"), e.g. ``open_store("x.tif",
    compressor="blosc-lz4", cache_size="1GiB")``. ``source`` may be a URL (``https://...``,
    ``s3://bucket/key``): ``anon=True`` reads a public bucket, ``storage_options={"endpoint_url": ...}``
    configures the protocol's fsspec file system, ``disk_cache="DIR"`` (and ``disk_cache_size="10GiB"``)
    keeps fetched blocks on disk. A directory no reader opens as one image is a repository (``max_open``,
    ``settle``, ``follow_symlinks``): its tree, each image at ``<name>.ome.zarr/``. A read that takes longer
    than ``timeout`` seconds (positive, finite) raises
    ``zarrfs.core.requests.RequestTimeout``, a TimeoutError, where a mount answers EIO.
    """
    absolute = _absolute(source)
    repository = repository_options(
        **{name: options.pop(name) for name in ("max_open", "settle", "follow_symlinks") if name in options}
    )
    parsed = serve_options(**options)
    served = _serve(absolute, timeout, parsed, repository)
    try:
        watched = tuple(_watched(served.dataset).items())
        opening = StoreOpening(absolute, timeout, parsed, repository, watched, _fingerprint(served.dataset))
    except BaseException:
        served.close()
        raise
    return ZarrfsStore._of(opening, served)


# The stores unpickled in this process, by what they open (see REOPENED_STORES_KEPT): a dask worker unpickles
# the zarr array and its store with every task, and all of them share one opened source and its cache.
_reopened: OrderedDict[StoreOpening, ZarrfsStore] = OrderedDict()
_reopened_lock = threading.Lock()


def _unpickled(opening: StoreOpening) -> ZarrfsStore:
    with _reopened_lock:
        store = _reopened.get(opening)
        if store is None:
            store = _reopened[opening] = ZarrfsStore._of(opening, None)
            while len(_reopened) > REOPENED_STORES_KEPT:
                _reopened.popitem(last=False)
        else:
            _reopened.move_to_end(opening)
        return store
