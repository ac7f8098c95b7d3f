"""What tells a file from a changed one: its identity (device, inode, size, modification and status change
times), for the core's watch on a source's files and for sources that check the files they read themselves.
A source at a URL is watched through its RemoteObject instead (see zarrfs.sources.remote.objects).

A write updates both times before its bytes can be read back (the kernel stamps the inode first, to the tick
of its clock), and utime() can put the mtime back but never the ctime, so a rewrite that restores the old
mtime still shows.
"""

from __future__ import annotations

import os
from typing import NamedTuple, Protocol

from zarrfs.sources.remote.urls import is_url


class FileIdentity(NamedTuple):
    """A tuple: the check of an unchanged file is one stat and one comparison."""

    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, path: str) -> FileIdentity:
        status = os.stat(path)
        return cls(status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns)

    def change_to(self, now: FileIdentity) -> str | None:
        """What changed from this identity to ``now``, in words (None when nothing did)."""
        if now.device != self.device:
            return f"was replaced by a file on another device (device {self.device} -> {now.device})"
        if now.inode != self.inode:
            return f"was replaced by another file (inode {self.inode} -> {now.inode})"
        if now.size != self.size:
            return f"changed size ({self.size} -> {now.size} bytes)"
        if now.mtime_ns != self.mtime_ns:
            return "was modified (its modification time changed)"
        if now.ctime_ns != self.ctime_ns:
            # A metadata change (chmod, chown, a new link) looks the same: it is refused too, to be safe.
            return "was changed with its modification time kept (its status change time moved)"
        return None


def change_since(path: str, opened: FileIdentity) -> str | None:
    """What happened to the file at ``path`` since it had the identity ``opened``, in words, or None."""
    try:
        now = FileIdentity.of(path)
    except FileNotFoundError:
        return "was deleted"
    except OSError as error:
        return f"cannot be checked ({error.strerror})"
    return None if now == opened else opened.change_to(now)


class Watched(Protocol):
    """A remote object as the watch sees it: what changed since open (None: nothing), and its time."""

    @property
    def mtime_ns(self) -> int: ...

    def change(self) -> str | None: ...


def identity_of(path: str) -> FileIdentity | Watched:
    """The identity of the file at ``path``, or for a URL the object open under it (FileNotFoundError if
    none is)."""
    if is_url(path):
        from zarrfs.sources.remote.objects import opened

        remote = opened(path)
        if remote is None:
            raise FileNotFoundError(f"no object is open at {path}")
        return remote
    return FileIdentity.of(path)


def change_of(path: str, opened: FileIdentity | Watched) -> str | None:
    """What happened to the file or object at ``path`` since it had the identity ``opened``, or None."""
    return change_since(path, opened) if isinstance(opened, FileIdentity) else opened.change()
