"""The FUSE operations: each call is one lookup in the virtual tree, with errors mapped to errno values.

Importing this module loads no libfuse (see fuse_binding.py)."""

from __future__ import annotations

import errno
import itertools
import logging
import math
import os
import stat
from collections.abc import Callable, Iterator

from zarrfs.core.requests import (
    DEFAULT_WORKERS,
    ChunkReadError,
    RequestPolicy,
    RequestTimeout,
    SourceChangedError,
)
from zarrfs.core.tree import Entry, FileBytes, ServedTree

log = logging.getLogger(__name__)


# Workers for each kind of request (see zarrfs.core.requests).
WORKER_THREADS = DEFAULT_WORKERS


def _refusal(code: int) -> OSError:
    """What an operation raises to answer ``-code``: libfuse's binding turns any OSError into its errno."""
    return OSError(code, os.strerror(code))


def _read_only(*_args: object, **_kwargs: object) -> int:
    raise _refusal(errno.EROFS)


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


class ZarrfsOperations:
    """Read-only FUSE view of a served tree (an image's VirtualTree, or a repository's tree). ``on_init``
    runs once libfuse has started serving.

    A plain class, with no import of libfuse's binding: the binding (fuse_binding.py) registers exactly the
    operations defined here and maps the OSError each one raises to its errno.

    Lookups and reads follow the shared request policy (zarrfs.core.requests): answered on the libfuse thread
    when they need no chunk made and no source data read, else in a worker, with EIO after
    ``request_timeout`` seconds so that no client (and no libfuse thread) waits forever on a stuck read.
    """

    use_ns = True

    def __init__(
        self,
        tree: ServedTree,
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

    def _stat(self, path: str) -> Entry:
        try:
            entry = self.requests.answer(self.tree.stat, path)
        except Exception as error:
            raise _refusal(_errno_for(path, error)) from None
        if entry is None:
            raise _refusal(errno.ENOENT)
        return entry

    def getattr(self, path: str, fh: int | None = None) -> dict[str, int]:
        entry = self._stat(path)
        return self._attributes(entry.size, entry.is_dir)

    def access(self, path: str, amode: int) -> int:
        self._stat(path)
        if amode & os.W_OK:
            raise _refusal(errno.EROFS)
        return 0

    def opendir(self, path: str) -> int:
        if not self._stat(path).is_dir:
            raise _refusal(errno.ENOTDIR)
        return 0

    def readdir_with_offset(self, path: str, offset: int, fh: int) -> Iterator[tuple[str, None, int]]:
        """Entries from ``offset`` on, each with the offset of the next: libfuse asks again from where its
        buffer filled, so a directory of millions of chunks is never held in memory at once."""
        if not self._stat(path).is_dir:
            raise _refusal(errno.ENOTDIR)
        special = [".", ".."][offset:]
        try:
            # A repository's listing may scan a directory or open an image: in a worker, within --timeout.
            names = self.requests.answer(self.tree.listdir, path, max(0, offset - 2))
        except Exception as error:
            raise _refusal(_errno_for(path, error)) from None
        for position, name in enumerate(itertools.chain(special, names), start=offset + 1):
            yield name, None, position

    def open(self, path: str, flags: int) -> int:
        if flags & os.O_ACCMODE != os.O_RDONLY or flags & (os.O_TRUNC | os.O_CREAT):
            raise _refusal(errno.EROFS)
        if self._stat(path).is_dir:
            raise _refusal(errno.EISDIR)
        return 0

    def read(self, path: str, size: int, offset: int, fh: int) -> FileBytes:
        try:
            return self.requests.answer(self.tree.read, path, offset, size)
        except Exception as error:
            raise _refusal(_errno_for(path, error)) from None

    def statfs(self, path: str) -> dict[str, int]:
        return {"f_bsize": 4096, "f_frsize": 4096, "f_namemax": 255}

    def getxattr(self, path: str, name: str, position: int = 0) -> bytes:
        self._stat(path)
        raise _refusal(errno.ENODATA)  # Linux's ENOATTR

    def listxattr(self, path: str) -> list[str]:
        self._stat(path)
        return []

    # Every call that would change something: the served tree is a read-only view of the source.
    write = create = mkdir = rmdir = unlink = rename = truncate = _read_only
    chmod = chown = symlink = link = mknod = utimens = setxattr = removexattr = _read_only
