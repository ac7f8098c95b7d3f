"""The kernel's mount table, probes of a mount whose daemon may hang (each with a time limit), unmounting.

Anything that touches a FUSE mount point can wait for its daemon, for ever if the daemon is stopped or hung.
The mount table in /proc never waits; every other probe here runs under ``within_time_limit``.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import ParamSpec, TypeVar

from zarrfs.errors import MountError

log = logging.getLogger("zarrfs")

# zarrfs mounts with subtype=zarrfs, shown by the kernel as this file system type: zarrfs acts on these only.
FUSE_SUBTYPE = "zarrfs"
ZARRFS_FSTYPE = f"fuse.{FUSE_SUBTYPE}"
# A daemon that answers at all answers a statvfs in microseconds; one stopped or hung never does.
PROBE_TIMEOUT_S = 5.0
UNMOUNT_TIMEOUT_S = 15.0
FUSE_CONNECTIONS = Path("/sys/fs/fuse/connections")

P = ParamSpec("P")
T = TypeVar("T")


def within_time_limit(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``function(*args)``, or TimeoutError if it has not returned within PROBE_TIMEOUT_S. It runs in a helper
    thread, which stays blocked on a hung mount until the process ends (the kernel lets it go then)."""
    outcome: list[tuple[bool, object]] = []

    def run() -> None:
        try:
            outcome.append((True, function(*args, **kwargs)))
        except BaseException as error:  # handed to the caller, whatever it is
            outcome.append((False, error))

    helper = threading.Thread(target=run, name="zarrfs-probe", daemon=True)
    helper.start()
    helper.join(PROBE_TIMEOUT_S)
    if not outcome:
        raise TimeoutError(f"no answer within {PROBE_TIMEOUT_S:.0f} s")
    returned, value = outcome[0]
    if not returned:
        raise value  # type: ignore[misc]
    return value  # type: ignore[return-value]


@dataclass(frozen=True)
class Mount:
    """One line of /proc/self/mountinfo."""

    path: str
    device: str  # "major:minor"
    fstype: str

    @property
    def is_zarrfs(self) -> bool:
        return self.fstype == ZARRFS_FSTYPE

    @property
    def connection(self) -> str:
        """The FUSE connection's name under /sys/fs/fuse/connections (the minor device number)."""
        return self.device.split(":")[1]


def _unescape(field: str) -> str:
    """The kernel writes space, tab, newline and backslash in paths as octal escapes (\\040)."""
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), field)


def mount_table() -> dict[str, Mount]:
    """Mount point -> the mount on top there, read from the kernel's table: never waits on a FUSE daemon."""
    mounts = {}
    # Paths are bytes: decode them as os.fsdecode does, so that they compare equal to Python's paths.
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as table:
        for line in table:
            fields, _, filesystem = line.partition(" - ")
            parts = fields.split()
            path = _unescape(parts[4])
            mounts[path] = Mount(path, parts[2], _unescape(filesystem.split()[0]))  # later lines lie on top
    return mounts


class DaemonState(Enum):
    LIVE = "live"
    DEAD = "dead"  # the daemon ended without unmounting: "Transport endpoint is not connected"
    HUNG = "hung"  # stopped (SIGSTOP) or stuck: requests wait for ever


def daemon_state(path: str) -> DaemonState:
    """Ask the daemon of the FUSE mount at ``path``: stat() may be answered from the kernel's attribute cache,
    statvfs() always goes to the daemon."""
    try:
        within_time_limit(os.statvfs, path)
    except TimeoutError:
        return DaemonState.HUNG
    except OSError as error:
        if error.errno in (errno.ENOTCONN, errno.ECONNABORTED):
            return DaemonState.DEAD
    return DaemonState.LIVE


def resolve(path: str) -> str:
    """``os.path.realpath`` with a time limit (it stats the path, which may be a hung mount point)."""
    try:
        return within_time_limit(os.path.realpath, path)
    except TimeoutError:
        raise MountError(
            f"{path} does not answer: a FUSE daemon under it is stopped or hung "
            f"(if it is a zarrfs mount, clear it with: zarrfs unmount --lazy {path})"
        ) from None


def fusermount() -> str | None:
    return shutil.which("fusermount3") or shutil.which("fusermount")


def _abort_connection(mount: Mount) -> bool:
    """Cut a FUSE connection: every pending and future request fails at once (ECONNABORTED). The control file
    belongs to the user who mounted; the fusectl file system that holds it is not mounted everywhere (systemd
    mounts it, containers often do not): root then mounts it in a private mount namespace of a child, which
    leaves the system's mount table alone."""
    control = FUSE_CONNECTIONS / mount.connection / "abort"
    try:
        control.write_text("1")
        return True
    except OSError as error:
        log.debug("cannot write %s: %s", control, error.strerror)
    unshare = shutil.which("unshare")
    if os.geteuid() != 0 or unshare is None:
        return False
    script = 'mount -t fusectl fusectl "$1" && echo 1 > "$1/$2/abort"'
    command = [unshare, "--mount", "sh", "-c", script, "sh", str(FUSE_CONNECTIONS), mount.connection]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=UNMOUNT_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        return False
    if result.returncode != 0:
        log.debug("cannot abort FUSE connection %s: %s", mount.connection, result.stderr.strip())
    return result.returncode == 0


def _run_unmount(command: list[str]) -> subprocess.CompletedProcess[str] | None:
    """Run an unmount command; None when it did not finish in time."""
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=UNMOUNT_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return None


def _unmount_command(path: str, lazy: bool) -> list[str]:
    helper = fusermount()
    if helper is not None:
        return [helper, "-u", *(["-z"] if lazy else []), path]
    if os.geteuid() == 0:
        return ["umount", *(["-l"] if lazy else []), path]
    raise MountError("fusermount3 not found: install the fuse3 package (e.g. apt-get install fuse3)")


def _hung_daemon_note(mountpoint: str, mount: Mount) -> str:
    return (
        f"{mountpoint} was detached, but its daemon does not answer (stopped or hung) and its FUSE "
        f"connection could not be cut: processes reading files in it stay blocked until the daemon is killed "
        f"or root runs 'echo 1 > {FUSE_CONNECTIONS}/{mount.connection}/abort'"
    )


def zarrfs_mount_at(mountpoint: str) -> tuple[str, Mount]:
    """The resolved path and the zarrfs mount there; MountError when there is none (or another kind)."""
    try:
        path = resolve(mountpoint)
    except MountError:
        path = os.path.abspath(mountpoint)  # the mount point itself hangs: the table still knows it
    mount = mount_table().get(path)
    if mount is None:
        raise MountError(f"not mounted: {mountpoint}")
    if not mount.is_zarrfs:
        raise MountError(
            f"not a zarrfs mount: {mountpoint} (file system type {mount.fstype}); "
            "zarrfs unmounts only its own"
        )
    return path, mount


def unmount(mountpoint: str, lazy: bool = False) -> str | None:
    """Unmount the zarrfs mount at ``mountpoint`` (a stale one too); returns a warning for the user, if any.

    Lazily unmounting a mount whose daemon does not answer first cuts its connection, so that readers blocked
    inside fail instead of waiting for ever; where that is not allowed, the warning says so.
    """
    path, mount = zarrfs_mount_at(mountpoint)
    warning = None
    if lazy and daemon_state(path) is DaemonState.HUNG and not _abort_connection(mount):
        warning = _hung_daemon_note(mountpoint, mount)
    result = _run_unmount(_unmount_command(path, lazy))
    if result is None:
        # fusermount3 itself waits on the daemon: cut its connection and detach the mount point.
        aborted = _abort_connection(mount)
        result = _run_unmount(_unmount_command(path, lazy=True))
        if result is None or path in mount_table():
            raise MountError(f"cannot unmount {mountpoint}: the daemon does not answer (try as root)")
        log.warning("the daemon of %s did not answer; its connection was cut", mountpoint)
        return None if aborted else _hung_daemon_note(mountpoint, mount)
    if result.returncode != 0:
        reason = (result.stderr or result.stdout).strip().splitlines()
        detail = reason[-1] if reason else f"exit code {result.returncode}"
        if "busy" in detail.lower():
            raise MountError(
                f"{mountpoint} is busy (a process still uses it); close it, or run: zarrfs unmount --lazy"
            )
        raise MountError(f"cannot unmount {mountpoint}: {detail}")
    return warning
