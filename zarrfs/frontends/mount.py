"""Mounting and unmounting: checks with clear errors, the daemon process and its readiness signal.

``zarrfs mount`` forks the daemon, a child process that runs FUSE in its own foreground (daemonizing after
threads exist can hang), and returns only once the child reports the mount live or failed.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from zarrfs.core import ServeOptions, open_dataset
from zarrfs.core.requests import DEFAULT_TIMEOUT_S
from zarrfs.errors import MountError, ZarrfsError
from zarrfs.frontends.allocator import keep_freed_memory_for_reuse

log = logging.getLogger("zarrfs")

READY_MESSAGE = "ready"
READY_TIMEOUT_S = 120.0
# Served content never changes while mounted: let the kernel cache attributes, lookups and misses.
CACHE_TIMEOUT_S = 3600
READ_AHEAD_KB = 4096
UNMOUNT_TIMEOUT_S = 15.0
LOG_FORMAT = "%(asctime)s zarrfs[%(process)d] %(levelname)s %(message)s"


@dataclass
class MountSpec:
    """Everything the daemon needs."""

    source: str
    mountpoint: str
    options: ServeOptions = field(default_factory=ServeOptions)
    fuse_options: dict[str, str | bool] = field(default_factory=dict)
    log_file: str | None = None
    debug: bool = False
    request_timeout: float = DEFAULT_TIMEOUT_S  # a request taking longer gets EIO


def parse_fuse_options(values: tuple[str, ...] | list[str]) -> dict[str, str | bool]:
    """``-o allow_other,uid=1000`` -> {"allow_other": True, "uid": "1000"}."""
    options: dict[str, str | bool] = {}
    for value in values:
        for item in value.split(","):
            if item.strip():
                key, sep, setting = item.strip().partition("=")
                options[key] = setting if sep else True
    return options


def default_log_file(mountpoint: str) -> str:
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    name = os.path.abspath(mountpoint).strip("/").replace("/", "_") or "root"
    return os.path.join(state, "zarrfs", f"{name}.log")


def _connection_lost(mountpoint: str) -> bool:
    """A mount whose daemon died: stat() of its root may still succeed from the kernel's attribute cache,
    but statvfs() always asks the daemon."""
    try:
        os.statvfs(mountpoint)
    except OSError as error:
        return error.errno in (errno.ENOTCONN, errno.ECONNABORTED)
    return False


def mount_state(mountpoint: str) -> str:
    """'missing', 'not-dir', 'stale' (a dead FUSE daemon left it), 'mounted', 'non-empty' or 'ok'."""
    if os.path.realpath(mountpoint) in mounted_devices():
        return "stale" if _connection_lost(mountpoint) else "mounted"
    try:
        os.stat(mountpoint)
    except OSError as error:
        if error.errno in (errno.ENOTCONN, errno.ECONNABORTED):
            return "stale"
        if error.errno == errno.ENOENT:
            return "missing"
        raise MountError(f"cannot access mount point {mountpoint}: {error.strerror}") from None
    if not os.path.isdir(mountpoint):
        return "not-dir"
    try:
        if any(os.scandir(mountpoint)):
            return "non-empty"
    except PermissionError:
        raise MountError(f"no permission to read mount point {mountpoint}") from None
    return "ok"


def check_mountpoint(mountpoint: str, source: str) -> None:
    state = mount_state(mountpoint)
    problems = {
        "missing": f"mount point does not exist: {mountpoint} (create it with: mkdir -p {mountpoint})",
        "not-dir": f"mount point is not a directory: {mountpoint}",
        "stale": (
            f"mount point {mountpoint} is a stale mount left by a daemon that died "
            f"(Transport endpoint is not connected); clear it with: zarrfs unmount {mountpoint}"
        ),
        "mounted": f"mount point is already a mount: {mountpoint} (first run: zarrfs unmount {mountpoint})",
        "non-empty": f"mount point is not empty: {mountpoint} (the mount would hide its files)",
    }
    if state in problems:
        raise MountError(problems[state])
    real_source = os.path.realpath(source)
    real_mountpoint = os.path.realpath(mountpoint)
    if real_source.startswith(real_mountpoint.rstrip("/") + "/"):
        raise MountError(f"source {source} lies inside the mount point {mountpoint}; mount somewhere else")


def check_fuse_available() -> None:
    if not os.path.exists("/dev/fuse"):
        raise MountError(
            "/dev/fuse not found: the FUSE kernel module is not available here "
            "(load it with 'modprobe fuse', or give the container --device /dev/fuse)"
        )
    if os.geteuid() != 0 and not (shutil.which("fusermount3") or shutil.which("fusermount")):
        raise MountError("fusermount3 not found: install the fuse3 package (e.g. apt-get install fuse3)")


def _raise_read_ahead(mountpoint: str) -> None:
    """As root, let the kernel read ahead in large requests (its 128 KiB default halves throughput)."""
    device = os.stat(mountpoint).st_dev
    path = Path(f"/sys/class/bdi/{os.major(device)}:{os.minor(device)}/read_ahead_kb")
    try:
        path.write_text(str(READ_AHEAD_KB))
    except OSError as error:
        log.debug("read-ahead left at its default (%s): %s", path, error.strerror)


def _report_when_live(mountpoint: str, on_live: Callable[[], None]) -> None:
    """Wait (in a thread) until the mount is visible, then tune it and report readiness."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not os.path.ismount(mountpoint) and time.monotonic() < deadline:
        time.sleep(0.005)
    if os.geteuid() == 0:
        _raise_read_ahead(mountpoint)
    on_live()


def serve(spec: MountSpec, on_live: Callable[[], None], on_error: Callable[[str], None]) -> None:
    """Check, open the source, mount and serve until unmounted or signalled (SIGINT/SIGTERM)."""
    try:
        check_fuse_available()
        check_mountpoint(spec.mountpoint, spec.source)
        from zarrfs.frontends.fuse_ops import FUSE, ZarrfsOperations

        keep_freed_memory_for_reuse()  # this process is the daemon: its allocator is ours to tune
        dataset = open_dataset(spec.source, spec.options)
    except ZarrfsError as error:
        on_error(str(error))
        raise
    mountpoint = os.path.realpath(spec.mountpoint)  # the kernel's mount table holds resolved paths
    went_live = threading.Event()

    def when_live() -> None:
        went_live.set()
        on_live()

    operations = ZarrfsOperations(
        dataset.tree,
        mtime_ns=os.stat(spec.source).st_mtime_ns,
        request_timeout=spec.request_timeout,
        on_init=lambda: threading.Thread(
            target=_report_when_live, args=(mountpoint, when_live), daemon=True
        ).start(),
    )
    fuse_options: dict[str, str | bool] = {
        "ro": True,
        "fsname": f"zarrfs:{spec.source}",
        "subtype": "zarrfs",
        "kernel_cache": True,
        "attr_timeout": CACHE_TIMEOUT_S,
        "entry_timeout": CACHE_TIMEOUT_S,
        "negative_timeout": CACHE_TIMEOUT_S,
        "default_permissions": True,
        **spec.fuse_options,
    }

    log.info("serving %s at %s (%s)", spec.source, mountpoint, dataset.source.info.description)
    try:
        FUSE(operations, mountpoint, foreground=True, debug=spec.debug, **fuse_options)
    except RuntimeError as error:
        # libfuse also reports a loop ended by SIGINT/SIGTERM as an error; after a live mount that is the
        # normal way to stop, and libfuse has unmounted by then.
        if not went_live.is_set():
            message = f"FUSE mount failed at {mountpoint} (libfuse status {error}); see the messages above"
            on_error(message)
            raise MountError(message) from None
        log.info("stopped by a signal (libfuse status %s)", error)
    finally:
        dataset.close()
    log.info("unmounted %s", mountpoint)


def configure_logging(debug: bool, log_file: str | None = None) -> None:
    level = logging.DEBUG if debug else logging.INFO
    if log_file:
        logging.basicConfig(level=level, format=LOG_FORMAT, filename=log_file)
    else:
        logging.basicConfig(level=level, format=LOG_FORMAT, stream=sys.stderr)


class ReadyPipe:
    """The daemon's one-line report to the waiting ``zarrfs mount``: "ready" or why not; sent at most once."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    def send(self, message: str) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.write(fd, (message.replace("\n", " ") + "\n").encode())
        except OSError:
            pass  # the parent gave up waiting
        finally:
            os.close(fd)


def run_foreground(spec: MountSpec, ready_pipe: ReadyPipe | None = None) -> None:
    """Serve in this process; with ``ready_pipe``, report "ready" or the error line to the waiting parent."""
    # A background daemon's stderr already goes to its log file.
    configure_logging(spec.debug, spec.log_file if ready_pipe is None else None)

    def report(message: str) -> None:
        if ready_pipe is not None:
            ready_pipe.send(message)

    def on_live() -> None:
        log.info("mount is live")
        report(READY_MESSAGE)

    serve(spec, on_live, report)


def mount_background(spec: MountSpec) -> str:
    """Start the daemon and return its log file once the mount is live; raise MountError otherwise.

    The daemon is this process forked after its imports, which saves starting a second interpreter and
    importing everything again (about half of the mount time). Call it only while this process runs a
    single thread (the ``zarrfs`` command does): a fork copies just the calling thread.
    """
    if threading.active_count() != 1:
        raise RuntimeError("mount_background must be called from a single-threaded process")
    # Checked here too (the daemon checks again) so that these errors need no process start.
    check_fuse_available()
    check_mountpoint(spec.mountpoint, spec.source)
    log_file = spec.log_file or default_log_file(spec.mountpoint)
    os.makedirs(os.path.dirname(log_file), exist_ok=True)
    from zarrfs.frontends import fuse_ops  # noqa: F401  (loads libfuse once, before the fork)

    log_fd = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    read_end, write_end = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        _run_daemon(spec, log_fd, ReadyPipe(write_end))  # never returns
    os.close(log_fd)
    os.close(write_end)
    message = _wait_for_report(read_end, pid)
    if message != READY_MESSAGE:
        if not _reaped(pid):
            os.kill(pid, signal.SIGTERM)
        raise MountError(message or f"the daemon exited before the mount was live; see {log_file}")
    return log_file


def _run_daemon(spec: MountSpec, log_fd: int, ready_pipe: ReadyPipe) -> NoReturn:
    """The forked daemon: a session of its own (it survives the shell that started the mount, and its
    Ctrl-C), stdin from /dev/null, stdout and stderr to the log file; serves until unmounted."""
    code = 2
    try:
        os.setsid()
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(log_fd)
        code = _serve_reporting(spec, ready_pipe)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # the parent's exit handlers (click's, atexit's) are not the daemon's


def _serve_reporting(spec: MountSpec, ready_pipe: ReadyPipe) -> int:
    """Serve; returns the exit status, and sends any failure before the mount went live to the parent."""
    try:
        run_foreground(spec, ready_pipe)
    except ZarrfsError as error:
        log.error("%s", error)
        return 1
    except Exception as error:  # a bug: the traceback goes to the log, one line to the waiting parent
        log.exception("daemon failed")
        ready_pipe.send(f"internal error: {type(error).__name__}: {error} (traceback in the log)")
        return 2
    return 0


def _reaped(pid: int) -> bool:
    """Whether the child ``pid`` has exited (and is now reaped)."""
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:
        return True


def _wait_for_report(read_end: int, pid: int) -> str:
    result: list[str] = []

    def read_report() -> None:
        with os.fdopen(read_end, "rb") as pipe:
            result.append(pipe.readline().decode(errors="replace").strip())

    reader = threading.Thread(target=read_report, daemon=True)
    reader.start()
    reader.join(READY_TIMEOUT_S)
    if reader.is_alive():
        os.kill(pid, signal.SIGKILL)
        return f"the daemon did not report a live mount within {READY_TIMEOUT_S:.0f} s; it was stopped"
    return result[0] if result else ""


def _fusermount() -> str | None:
    return shutil.which("fusermount3") or shutil.which("fusermount")


def mounted_devices() -> dict[str, str]:
    """Mount point -> "major:minor" of every mount, read from the kernel's table: unlike stat() of the mount
    point, this never waits on a FUSE daemon, even a stuck one."""
    devices = {}
    with open("/proc/self/mountinfo") as table:
        for line in table:
            fields = line.split()
            # Spaces and other special characters in paths are octal escapes (\040).
            path = re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), fields[4])
            devices[path] = fields[2]
    return devices


def _abort_connection(device: str) -> None:
    """As root, cut a hung FUSE connection: every pending and future request fails at once."""
    minor = device.split(":")[1]
    try:
        Path(f"/sys/fs/fuse/connections/{minor}/abort").write_text("1")
    except OSError as error:
        log.debug("could not abort FUSE connection %s: %s", minor, error.strerror)


def _run_unmount(command: list[str]) -> subprocess.CompletedProcess[str] | None:
    """Run an unmount command; None when it did not finish in time."""
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=UNMOUNT_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return None


def _unmount_command(path: str, lazy: bool) -> list[str]:
    helper = _fusermount()
    if helper is not None:
        return [helper, "-u", *(["-z"] if lazy else []), path]
    if os.geteuid() == 0:
        return ["umount", *(["-l"] if lazy else []), path]
    raise MountError("fusermount3 not found: install the fuse3 package (e.g. apt-get install fuse3)")


def unmount(mountpoint: str, lazy: bool = False) -> None:
    """Unmount a zarrfs (or any FUSE) mount, including a stale one whose daemon died; always returns."""
    path = os.path.realpath(mountpoint)
    device = mounted_devices().get(path)
    if device is None:
        raise MountError(f"not mounted: {mountpoint}")
    result = _run_unmount(_unmount_command(path, lazy))
    if result is None:
        # The daemon does not answer: cut its connection (root) and detach the mount point.
        if os.geteuid() == 0:
            _abort_connection(device)
        result = _run_unmount(_unmount_command(path, lazy=True))
        if result is None or path in mounted_devices():
            raise MountError(f"cannot unmount {mountpoint}: the daemon does not answer (try as root)")
        log.warning("the daemon of %s did not answer; its connection was cut", mountpoint)
        return
    if result.returncode != 0:
        reason = (result.stderr or result.stdout).strip().splitlines()
        detail = reason[-1] if reason else f"exit code {result.returncode}"
        if "busy" in detail.lower():
            raise MountError(
                f"{mountpoint} is busy (a process still uses it); close it, or run: zarrfs unmount --lazy"
            )
        raise MountError(f"cannot unmount {mountpoint}: {detail}")
