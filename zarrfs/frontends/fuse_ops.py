"""The FUSE operations: each call is one lookup in the virtual tree, with errors mapped to errno values."""

from __future__ import annotations

import ctypes
import errno
import itertools
import logging
import math
import os
import stat
import threading
from collections.abc import Callable, Iterator
from ctypes.util import find_library
from typing import Any

import numpy as np

from zarrfs.core.requests import (
    DEFAULT_WORKERS,
    ChunkReadError,
    RequestPolicy,
    RequestTimeout,
    SourceChangedError,
)
from zarrfs.core.tree import Entry, FileBytes, VirtualTree
from zarrfs.errors import MountError

log = logging.getLogger(__name__)


def load_fuse_binding() -> Any:
    """Import mfusepy bound to libfuse3 when present (1 MiB requests), else libfuse2 (128 KiB)."""
    if "FUSE_LIBRARY_NAME" not in os.environ:
        # mfusepy prefers libfuse2 when both exist; libfuse3 carries 8x larger reads.
        for name in ("fuse3", "fuse"):
            if find_library(name):
                os.environ["FUSE_LIBRARY_NAME"] = name
                break
        else:
            raise MountError("libfuse not found: install the fuse3 package (e.g. apt-get install fuse3)")
    try:
        import mfusepy
    except (OSError, AttributeError) as error:
        raise MountError(f"cannot load libfuse: {error}") from None
    return mfusepy


_fuse = load_fuse_binding()
FuseOSError = _fuse.FuseOSError

# Workers for each kind of request (see zarrfs.core.requests).
WORKER_THREADS = DEFAULT_WORKERS

_threads_with_kept_state: set[int] = set()


def _keep_thread_state() -> None:
    """Keep this libfuse worker thread's Python thread state alive across callbacks.

    ctypes creates and destroys a thread state on every callback from a foreign thread, which doubles the CPU
    cost of a request; one extra, never released PyGILState_Ensure per thread makes it persistent."""
    ident = threading.get_ident()
    if ident not in _threads_with_kept_state:
        ctypes.pythonapi.PyGILState_Ensure()
        _threads_with_kept_state.add(ident)


def _address(data: memoryview) -> int:
    """Where a contiguous, possibly read-only buffer starts (ctypes takes only writable ones)."""
    address: int = np.frombuffer(data, dtype=np.uint8).__array_interface__["data"][0]
    return address


class FUSE(_fuse.FUSE):
    """mfusepy's FUSE with the thread-state fix applied to every callback, and reads that copy a view of a
    cached chunk straight into libfuse's buffer."""

    def _wrapper(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        _keep_thread_state()
        return super()._wrapper(func, *args, **kwargs)

    def read(self, path: bytes | None, buf: Any, size: int, offset: int, fip: Any) -> int:
        # mfusepy's read wants bytes from the operations: for a chunk file that would be one more copy of
        # every byte served (ours from the cached chunk, then its memmove).
        fh = fip.contents if self.raw_fi else fip.contents.fh
        name = None if path is None else path.decode(self.encoding, self.errors)
        data = self.operations.read(name, size, offset, fh)
        count = len(data)
        if count > size:
            raise ValueError(f"read returned {count} bytes for a request of {size}")
        if count:
            ctypes.memmove(buf, data if isinstance(data, bytes) else _address(data), count)
        return count


def _read_only(*_args: object, **_kwargs: object) -> int:
    raise FuseOSError(errno.EROFS)


def _errno_for(path: str, error: Exception) -> int:
    """The errno to answer a failed request with; logs failures not logged where they happened."""
    if isinstance(error, FileNotFoundError):
        return errno.ENOENT
    if isinstance(error, IsADirectoryError):
        return errno.EISDIR
    if isinstance(error, RequestTimeout):
        log.error("%s: answered with EIO", error)
    elif isinstance(error, SourceChangedError):
        log.error("refused %s: %s", path, error.strerror)
    elif not isinstance(error, ChunkReadError):  # a chunk's failure is logged where it happened
        log.error("%s failed: %s: %s", path, type(error).__name__, error)
    return errno.EIO


class ZarrfsOperations(_fuse.Operations):
    """Read-only FUSE view of a VirtualTree. ``on_init`` runs once libfuse has started serving.

    Lookups and reads follow the shared request policy (zarrfs.core.requests): answered on the libfuse thread
    when they need no chunk made and no source data read, else in a worker, with EIO after
    ``request_timeout`` seconds so that no client (and no libfuse thread) waits forever on a stuck read.
    """

    use_ns = True

    def __init__(
        self,
        tree: VirtualTree,
        mtime_ns: int,
        request_timeout: float,
        on_init: Callable[[], None] | None = None,
    ) -> None:
        self.tree = tree
        self.on_init = on_init
        self.uid = os.getuid()
        self.gid = os.getgid()
        self.mtime_ns = mtime_ns
        # Its workers start with the first request that needs one, once the mount is up (libfuse may fork
        # while daemonizing before that).
        self.requests = RequestPolicy(tree, request_timeout, WORKER_THREADS)

    def init(self, path: str) -> None:
        if self.on_init is not None:
            self.on_init()

    def destroy(self, path: str) -> None:
        self.requests.close()

    def _attributes(self, size: int, is_dir: bool) -> dict[str, int]:
        attributes = {
            "st_uid": self.uid,
            "st_gid": self.gid,
            "st_atime": self.mtime_ns,
            "st_mtime": self.mtime_ns,
            "st_ctime": self.mtime_ns,
        }
        if is_dir:
            attributes.update(st_mode=stat.S_IFDIR | 0o555, st_nlink=2, st_size=0)
        else:
            attributes.update(
                st_mode=stat.S_IFREG | 0o444, st_nlink=1, st_size=size, st_blocks=math.ceil(size / 512)
            )
        return attributes

    def _stat(self, path: str) -> Entry:
        try:
            entry = self.requests.answer(self.tree.stat, path)
        except Exception as error:
            raise FuseOSError(_errno_for(path, error)) from None
        if entry is None:
            raise FuseOSError(errno.ENOENT)
        return entry

    def getattr(self, path: str, fh: int | None = None) -> dict[str, int]:
        entry = self._stat(path)
        return self._attributes(entry.size, entry.is_dir)

    def access(self, path: str, amode: int) -> int:
        self._stat(path)
        if amode & os.W_OK:
            raise FuseOSError(errno.EROFS)
        return 0

    def opendir(self, path: str) -> int:
        if not self._stat(path).is_dir:
            raise FuseOSError(errno.ENOTDIR)
        return 0

    def readdir_with_offset(self, path: str, offset: int, fh: int) -> Iterator[tuple[str, None, int]]:
        """Entries from ``offset`` on, each with the offset of the next: libfuse asks again from where its
        buffer filled, so a directory of millions of chunks is never held in memory at once."""
        if not self._stat(path).is_dir:
            raise FuseOSError(errno.ENOTDIR)
        special = [".", ".."][offset:]
        names = self.tree.listdir(path, start=max(0, offset - 2))
        for position, name in enumerate(itertools.chain(special, names), start=offset + 1):
            yield name, None, position

    def open(self, path: str, flags: int) -> int:
        if flags & os.O_ACCMODE != os.O_RDONLY or flags & (os.O_TRUNC | os.O_CREAT):
            raise FuseOSError(errno.EROFS)
        if self._stat(path).is_dir:
            raise FuseOSError(errno.EISDIR)
        return 0

    def read(self, path: str, size: int, offset: int, fh: int) -> FileBytes:
        try:
            return self.requests.answer(self.tree.read, path, offset, size)
        except Exception as error:
            raise FuseOSError(_errno_for(path, error)) from None

    def statfs(self, path: str) -> dict[str, int]:
        return {"f_bsize": 4096, "f_frsize": 4096, "f_namemax": 255}

    def getxattr(self, path: str, name: str, position: int = 0) -> bytes:
        self._stat(path)
        raise FuseOSError(_fuse.ENOATTR)

    def listxattr(self, path: str) -> list[str]:
        self._stat(path)
        return []

    # Every call that would change something: the served tree is a read-only view of the source.
    write = create = mkdir = rmdir = unlink = rename = truncate = _read_only
    chmod = chown = symlink = link = mknod = utimens = setxattr = removexattr = _read_only
