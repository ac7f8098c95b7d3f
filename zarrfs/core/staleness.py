"""Detecting a source file that changed under a live mount, so that stale or mixed data is never served."""

from __future__ import annotations

import errno
import logging
import os
import threading
from dataclasses import dataclass

log = logging.getLogger(__name__)


class SourceChangedError(OSError):
    """The source file was replaced, truncated, modified or deleted after it was opened."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.EIO, message)


@dataclass(frozen=True)
class FileIdentity:
    device: int
    inode: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: str) -> FileIdentity:
        status = os.stat(path)
        return cls(status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns)


class SourceWatch:
    """Compares the source's identity (device, inode, size, mtime) with the one it had when opened.

    Once a change is seen the watch stays tripped: every later chunk access fails, so a client never gets
    chunks of the new file mixed with chunks of the old one (the source must be mounted again).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.opened = FileIdentity.of(path)
        self._change: str | None = None
        self._lock = threading.Lock()

    def _describe_change(self) -> str | None:
        try:
            now = FileIdentity.of(self.path)
        except FileNotFoundError:
            return "was deleted"
        except OSError as error:
            return f"cannot be checked ({error.strerror})"
        if (now.device, now.inode) != (self.opened.device, self.opened.inode):
            return "was replaced by another file"
        if now.size != self.opened.size:
            return f"changed size ({self.opened.size} -> {now.size} bytes)"
        if now.mtime_ns != self.opened.mtime_ns:
            return "was modified"
        return None

    def check(self) -> None:
        """Raise SourceChangedError (an EIO) if the source changed since it was opened."""
        if self._change is None:
            change = self._describe_change()
            if change is None:
                return
            with self._lock:
                if self._change is None:
                    self._change = change
                    log.error("source %s %s since it was mounted; serving no more chunks", self.path, change)
        raise SourceChangedError(f"source {self.path} {self._change} since it was mounted: remount it")
