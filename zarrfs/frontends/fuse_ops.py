"""The FUSE operations: each call is one lookup in the virtual tree, with errors mapped to errno values."""

from __future__ import annotations

import concurrent.futures
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

from zarrfs.core.levels import ChunkReadError
from zarrfs.core.staleness import SourceChangedError
from zarrfs.core.tree import FileBytes, VirtualTree, WouldBlock
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

# Chunk production releases the GIL in decoders and encoders; a few more threads than cores keep them busy.
WORKER_THREADS = max(4, 2 * (os.cpu_count() or 1))

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


class ZarrfsOperations(_fuse.Operations):
    """Read-only FUSE view of a VirtualTree. ``on_init`` runs once libfuse has started serving.

    Calls are answered on the libfuse thread when they need no chunk made and no source data read
    (documents, directories, known sizes, cached chunks). The others run in a worker pool and are answered
    with EIO after ``request_timeout`` seconds, so that no client (and no libfuse thread) waits forever on a
    stuck read. Handing every call to a worker cost 30-40 us per request, as much as the rest of a cached
    read.
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
        self.request_timeout = request_timeout
        self._workers: concurrent.futures.ThreadPoolExecutor | None = None

    def init(self, path: str) -> None:
        # Threads start only once the mount is up (libfuse may fork while daemonizing before this).
        self._workers = concurrent.futures.ThreadPoolExecutor(WORKER_THREADS, thread_name_prefix="zarrfs")
        if self.on_init is not None:
            self.on_init()

    def destroy(self, path: str) -> None:
        if self._workers is not None:
            self._workers.shutdown(wait=False, cancel_futures=True)

    def _bounded(self, call: Callable[..., Any], *args: Any) -> Any:
        """Run ``call`` within the time limit; a stuck call keeps its worker but no longer the client."""
        assert self._workers is not None
        future = self._workers.submit(call, *args)
        try:
            return future.result(timeout=self.request_timeout)
        except concurrent.futures.TimeoutError:
            log.error(
                "%s%s took longer than %g s: answered with EIO", call.__name__, args, self.request_timeout
            )
            raise FuseOSError(errno.EIO) from None

    def _answer(self, call: Callable[..., Any], *args: Any) -> Any:
        """``call(*args)`` answered at once if it can be without blocking, else within the time limit."""
        try:
            return call(*args, blocking=False)
        except WouldBlock:
            return self._bounded(call, *args)

    def _attributes(self, size: int, is_dir: bool) -> dict[str, int]:
        # The usual modes (0755, 0644), not read-only ones: a copy (`cp -r`, rsync -a) keeps the modes, and
        # read-only directories in it could not be deleted by their owner. Writes still fail: the mount is
        # read-only ("ro"), so every change gets EROFS.
        attributes = {
            "st_uid": self.uid,
            "st_gid": self.gid,
            "st_atime": self.mtime_ns,
            "st_mtime": self.mtime_ns,
            "st_ctime": self.mtime_ns,
        }
        if is_dir:
            attributes.update(st_mode=stat.S_IFDIR | 0o755, st_nlink=2, st_size=0)
        else:
            attributes.update(
                st_mode=stat.S_IFREG | 0o644, st_nlink=1, st_size=size, st_blocks=math.ceil(size / 512)
            )
        return attributes

    def _stat(self, path: str) -> Any:
        try:
            entry = self._answer(self.tree.stat, path)
        except SourceChangedError as error:
            log.error("refused %s: %s", path, error.strerror)
            raise FuseOSError(errno.EIO) from None
        except OSError as error:  # a compressed chunk whose size needs an encode that failed
            raise FuseOSError(errno.EIO) from error
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
            result: FileBytes = self._answer(self.tree.read, path, offset, size)
            return result
        except FileNotFoundError:
            raise FuseOSError(errno.ENOENT) from None
        except IsADirectoryError:
            raise FuseOSError(errno.EISDIR) from None
        except SourceChangedError as error:
            log.error("refused %s: %s", path, error.strerror)
            raise FuseOSError(errno.EIO) from None
        except ChunkReadError as error:
            # Logged where it happened; this chunk fails, the daemon keeps serving.
            raise FuseOSError(errno.EIO) from error
        except Exception as error:
            log.error("reading %s failed: %s: %s", path, type(error).__name__, error)
            raise FuseOSError(errno.EIO) from error

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
