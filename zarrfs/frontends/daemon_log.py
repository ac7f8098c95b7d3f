"""The daemon's log: where it goes, what it may never be, and what libfuse prints while mounting.

The log is opened for appending; a path that is the source image (also through a link) or lies in the mount
point is refused before a byte is written. Without ``--log-file`` it goes to the user's state directory or,
when there is none (no home directory, read-only home), to a private directory in the temporary directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from zarrfs.errors import MountError

SUFFIX = ".log"
NAME_MAX = 255  # bytes in one file name on Linux file systems


@dataclass(frozen=True)
class DaemonLog:
    fd: int
    path: str
    note: str | None = None  # for the user: why the log is not where the documentation says


def log_name(mountpoint: str) -> str:
    """``/mnt/img`` -> ``mnt_img.log``; a name too long for one file name keeps its end and gets a hash of
    the whole path, so that two long mount points never share a log."""
    name = mountpoint.strip("/").replace("/", "_") or "root"
    encoded = os.fsencode(name)
    if len(encoded) + len(SUFFIX) <= NAME_MAX:
        return name + SUFFIX
    digest = hashlib.sha256(os.fsencode(mountpoint)).hexdigest()[:16]
    keep = NAME_MAX - len(SUFFIX) - len(digest) - 1
    return f"{os.fsdecode(encoded[-keep:])}-{digest}{SUFFIX}"


def _state_directory() -> str | None:
    """$XDG_STATE_HOME/zarrfs or ~/.local/state/zarrfs; None without a home directory (a home that does not
    exist is not made)."""
    state = os.environ.get("XDG_STATE_HOME", "")
    if os.path.isabs(state):
        return os.path.join(state, "zarrfs")
    home = os.path.expanduser("~")
    if not os.path.isabs(home) or not os.path.isdir(home):
        return None
    return os.path.join(home, ".local", "state", "zarrfs")


def _private_temporary_directory() -> str:
    """$TMPDIR/zarrfs-<uid>, made 0700; refused unless it is a directory of this user that others cannot
    write (another user could have made it, or put a symlink there, to catch our log)."""
    directory = os.path.join(tempfile.gettempdir(), f"zarrfs-{os.geteuid()}")
    with contextlib.suppress(FileExistsError):
        os.mkdir(directory, 0o700)
    status = os.lstat(directory)
    if not stat.S_ISDIR(status.st_mode) or status.st_uid != os.geteuid() or status.st_mode & 0o022:
        raise OSError(f"{directory} is not a private directory of this user")
    return directory


def _inside(path: str, directory: str) -> bool:
    path, directory = os.path.realpath(path), os.path.realpath(directory)
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def _open_log(path: str, source: str | Sequence[str], mountpoint: str) -> int:
    """Open ``path`` for appending; MountError if it is the source (any file of a sequence) or lies in the
    mount point."""
    if _inside(path, mountpoint):
        raise MountError(f"log file {path} lies inside the mount point {mountpoint}; put it elsewhere")
    with contextlib.suppress(FileExistsError):  # a file there: open() below says "Not a directory"
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    opened = os.fstat(fd)
    for name in [source] if isinstance(source, str) else source:
        try:
            source_status = os.stat(name)
        except OSError:
            continue  # the source check that follows says what is wrong with it
        if (opened.st_dev, opened.st_ino) == (source_status.st_dev, source_status.st_ino):
            os.close(fd)
            raise MountError(f"log file {path} is the source image {name}; the log must go elsewhere")
    return fd


def open_log_file(path: str, source: str | Sequence[str], mountpoint: str) -> DaemonLog:
    """The log the user asked for."""
    try:
        return DaemonLog(_open_log(path, source, mountpoint), path)
    except OSError as error:
        raise MountError(f"cannot write the log file {path}: {error.strerror or error}") from None


def open_default_log(source: str | Sequence[str], mountpoint: str) -> DaemonLog:
    """The state directory's log, or the temporary directory's when that cannot be written."""
    name = log_name(mountpoint)
    preferred = _state_directory()
    problem = "there is no home directory" if preferred is None else ""
    if preferred is not None:
        path = os.path.join(preferred, name)
        try:
            return DaemonLog(_open_log(path, source, mountpoint), path)
        except OSError as error:
            problem = f"cannot write {path}: {error.strerror or error}"
        except MountError as error:
            problem = str(error)
    try:
        path = os.path.join(_private_temporary_directory(), name)
        fd = _open_log(path, source, mountpoint)
    except (OSError, MountError) as error:
        raise MountError(
            f"no place for the daemon's log ({problem}; temporary directory: {error}); "
            "give one with --log-file"
        ) from None
    return DaemonLog(fd, path, f"{problem}; the daemon logs to {path}")


class CapturedStderr:
    """Sends file descriptor 2 to memory while libfuse mounts: what libfuse and fusermount3 print there
    (an unknown option, allow_other not allowed, no write access to the mount point, ...) is the reason a
    mount failed. ``release`` puts the real stderr back and returns what was printed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._saved: int | None = os.dup(2)
        self._memory = os.memfd_create("zarrfs-mount-messages")
        os.dup2(self._memory, 2)

    def release(self) -> str:
        """Restore stderr; what was printed meanwhile (once; later calls return "")."""
        with self._lock:
            if self._saved is None:
                return ""
            os.dup2(self._saved, 2)
            os.close(self._saved)
            self._saved = None
            size = os.fstat(self._memory).st_size
            text = os.pread(self._memory, size, 0).decode(errors="replace")
            os.close(self._memory)
            return text
