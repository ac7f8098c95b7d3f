"""Mounting: checks with clear errors, one mount at a time per mount point, the daemon and its readiness.

``zarrfs mount`` forks the daemon, a child process that runs FUSE in its own foreground (daemonizing after
threads exist can hang), and returns only once the child reports the mount live or failed. Until then it
holds a lock on the mount point (so that concurrent mounts there cannot stack), and if it is interrupted it
stops the daemon and removes any mount that daemon made.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import logging
import os
import select
import signal
import stat
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import NoReturn, TextIO

from zarrfs.core import ServeOptions
from zarrfs.core.repository import Repository, RepositoryOptions
from zarrfs.core.requests import DEFAULT_TIMEOUT_S
from zarrfs.core.served import open_served
from zarrfs.errors import MountError, ZarrfsError
from zarrfs.frontends.allocator import keep_freed_memory_for_reuse
from zarrfs.frontends.daemon_log import CapturedStderr, DaemonLog, open_default_log, open_log_file
from zarrfs.frontends.mounts import (
    FUSE_SUBTYPE,
    DaemonState,
    daemon_state,
    fusermount,
    mount_table,
    resolve,
    unmount,
)
from zarrfs.sources.identity import identity_of
from zarrfs.sources.registry import locate
from zarrfs.sources.remote.urls import is_url, redact

log = logging.getLogger("zarrfs")

READY_MESSAGE = "ready"
READY_TIMEOUT_S = 120.0
# A daemon told to stop gets this long to unmount and exit before it is killed; one that reported a failure
# is given this long to log it and exit by itself first.
STOP_TIMEOUT_S = 10.0
EXIT_GRACE_S = 5.0
# Served content never changes while mounted: let the kernel cache attributes, lookups and misses.
CACHE_TIMEOUT_S = 3600
# A repository's content does (files come and go): the kernel asks again after this long, so that new and
# deleted files show within REPOSITORY_CACHE_TIMEOUT_S plus the repository's own recheck (listings.py).
REPOSITORY_CACHE_TIMEOUT_S = 1
READ_AHEAD_KB = 4096
LOG_FORMAT = "%(asctime)s zarrfs[%(process)d] %(levelname)s %(message)s"
# zarrfs recognises its mounts by the subtype (file system type fuse.zarrfs): a user may not change it.
RESERVED_FUSE_OPTIONS = ("subtype",)
# libfuse 3.14 takes "no limit" (its default since 3.12) for an invalid number of idle worker threads and says
# so on every mount ("Ignoring invalid max threads value 4294967295"). As many idle threads as its default
# maximum of threads (10) keeps its behaviour: no worker thread ever exits.
LIBFUSE3_MAX_IDLE_THREADS = 10


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
    repository: RepositoryOptions = field(default_factory=RepositoryOptions)  # for a directory of images


def parse_fuse_options(values: tuple[str, ...] | list[str]) -> dict[str, str | bool]:
    """``-o allow_other,uid=1000`` -> {"allow_other": True, "uid": "1000"}."""
    options: dict[str, str | bool] = {}
    for value in values:
        for item in value.split(","):
            if item.strip():
                key, sep, setting = item.strip().partition("=")
                if key in RESERVED_FUSE_OPTIONS:
                    raise MountError(f"-o {key} is set by zarrfs (it recognises its own mounts by it)")
                options[key] = setting if sep else True
    return options


def reader_choice_hint(mountpoint: str) -> str | None:
    """A hint when the mount point's name does not end in ``.zarr``: bioio and napari pick their OME-Zarr
    reader by that suffix, and would not open the mount without it."""
    name = os.path.basename(os.path.normpath(mountpoint))
    if name.endswith(".zarr"):
        return None
    return (
        f"bioio and napari choose their reader by the .zarr suffix: mount on a directory named like "
        f"{name}.ome.zarr for them to open it"
    )


def escape_fuse_option(value: str) -> str:
    """libfuse splits -o at commas and reads backslash escapes: a path in an option needs both escaped."""
    return value.replace("\\", "\\\\").replace(",", "\\,")


def _mounted_problem(mountpoint: str) -> str | None:
    """Why the mount point cannot be mounted on because something is mounted there already, if it is."""
    mount = mount_table().get(mountpoint)
    if mount is None:
        return None
    if not mount.is_zarrfs:
        return f"mount point is already a mount: {mountpoint} (file system type {mount.fstype}, not zarrfs)"
    state = daemon_state(mountpoint)
    if state is DaemonState.DEAD:
        return (
            f"mount point {mountpoint} is a stale mount left by a daemon that died "
            f"(Transport endpoint is not connected); clear it with: zarrfs unmount {mountpoint}"
        )
    if state is DaemonState.HUNG:
        return (
            f"mount point {mountpoint} is a zarrfs mount whose daemon does not answer (stopped or hung); "
            f"clear it with: zarrfs unmount --lazy {mountpoint}"
        )
    return f"mount point is already a mount: {mountpoint} (first run: zarrfs unmount {mountpoint})"


def check_mountpoint(mountpoint: str, source: str) -> None:
    """MountError unless ``mountpoint`` (resolved) is an empty directory, no mount, away from the source."""
    problem = _mounted_problem(mountpoint)
    if problem is not None:
        raise MountError(problem)
    try:
        status = os.stat(mountpoint)
    except FileNotFoundError:
        raise MountError(
            f"mount point does not exist: {mountpoint} (create it with: mkdir -p {mountpoint})"
        ) from None
    except OSError as error:
        raise MountError(f"cannot access mount point {mountpoint}: {error.strerror}") from None
    if not stat.S_ISDIR(status.st_mode):
        raise MountError(f"mount point is not a directory: {mountpoint}")
    try:
        with os.scandir(mountpoint) as entries:
            if any(entries):
                raise MountError(f"mount point is not empty: {mountpoint} (the mount would hide its files)")
    except PermissionError:
        raise MountError(f"no permission to read mount point {mountpoint}") from None
    real_source = os.path.realpath(source)
    if not is_url(source) and real_source.startswith(mountpoint.rstrip("/") + "/"):
        raise MountError(f"source {source} lies inside the mount point {mountpoint}; mount somewhere else")
    if os.path.isdir(real_source) and mountpoint.startswith(real_source.rstrip("/") + "/"):
        # A repository would list its own mount, and serve it inside itself.
        raise MountError(f"mount point {mountpoint} lies inside the source {source}; mount somewhere else")


def check_fuse_available() -> None:
    if not os.path.exists("/dev/fuse"):
        raise MountError(
            "/dev/fuse not found: the FUSE kernel module is not available here "
            "(load it with 'modprobe fuse', or give the container --device /dev/fuse)"
        )
    if os.geteuid() != 0 and fusermount() is None:
        raise MountError("fusermount3 not found: install the fuse3 package (e.g. apt-get install fuse3)")
    # libfuse opens /dev/fuse itself and gives up when it cannot (fusermount3 is only asked to mount).
    try:
        os.close(os.open("/dev/fuse", os.O_RDWR))
    except OSError as error:
        remedy = (
            "a container needs --device /dev/fuse and a device cgroup rule that allows it"
            if os.geteuid() == 0
            else "ask an administrator to open it to users (the fuse3 package makes it mode 0666)"
        )
        raise MountError(f"/dev/fuse is not accessible ({error.strerror}): {remedy}") from None


class MountPointLock:
    """An exclusive lock on the mount point directory, held from the checks until the mount is live or has
    failed: of concurrent ``zarrfs mount`` runs onto one mount point one mounts, the others then find the
    mount there. The lock belongs to the open directory: a forked daemon shares it until both let go."""

    def __init__(self, mountpoint: str) -> None:
        try:
            self._fd: int | None = os.open(mountpoint, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as error:
            raise MountError(f"cannot open mount point {mountpoint}: {error.strerror}") from None
        fcntl.flock(self._fd, fcntl.LOCK_EX)  # waits for a mount in progress (its start is time-limited)
        self._releasing = threading.Lock()  # the daemon lets go from a FUSE thread, or on its way out

    def release(self) -> None:
        with self._releasing:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def _source_paths(spec: MountSpec) -> tuple[str, ...]:
    """What the user named and every file it stands for (a glob or a list names a file sequence): the log
    may be none of them."""
    return (spec.source, *locate(spec.source, spec.options.source).paths)


def prepare_mount(spec: MountSpec) -> MountPointLock:
    """Check FUSE and the mount point, then lock the mount point and check it again under the lock."""
    check_fuse_available()
    check_mountpoint(spec.mountpoint, spec.source)  # says what is wrong before waiting for any lock
    lock = MountPointLock(spec.mountpoint)
    try:
        check_mountpoint(spec.mountpoint, spec.source)
    except BaseException:
        lock.release()
        raise
    return lock


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


def _mount_failure(mountpoint: str, status: object, printed: str) -> str:
    """One line from what libfuse and fusermount3 printed while the mount failed."""
    lines = [line.strip() for line in printed.splitlines() if line.strip()]
    reason = "; ".join(lines) if lines else "libfuse printed no reason"
    return f"FUSE mount failed at {mountpoint} (libfuse status {status}): {reason}"


def _libfuse_version_options() -> dict[str, str | bool]:
    """Options for the libfuse version mfusepy is bound to (by fuse_ops, which must be imported first)."""
    import mfusepy

    return {"max_idle_threads": str(LIBFUSE3_MAX_IDLE_THREADS)} if mfusepy.fuse_version_major == 3 else {}


def serve(
    spec: MountSpec, lock: MountPointLock, on_live: Callable[[], None], on_error: Callable[[str], None]
) -> None:
    """Open the source, mount and serve until unmounted or signalled (SIGINT/SIGTERM). ``prepare_mount`` has
    checked the mount point and locked it; the lock is let go once the mount is live."""
    try:
        from zarrfs.frontends.fuse_binding import fuse_class
        from zarrfs.frontends.fuse_ops import ZarrfsOperations

        FUSE = fuse_class()
        keep_freed_memory_for_reuse()  # this process is the daemon: its allocator is ours to tune
        served = open_served(spec.source, spec.options, spec.repository)
    except ZarrfsError as error:
        on_error(str(error))
        raise
    went_live = threading.Event()
    captured: CapturedStderr | None = None

    def when_live() -> None:
        went_live.set()
        lock.release()
        on_live()

    def when_serving() -> None:
        # What libfuse printed while mounting did not stop it: it belongs in the log.
        if captured is not None:
            os.write(2, captured.release().encode())
        threading.Thread(target=_report_when_live, args=(spec.mountpoint, when_live), daemon=True).start()

    live = isinstance(served, Repository)
    # The time shown for every entry: the directory's, or the (first) source file's.
    mtime_ns = served.mtime_ns if isinstance(served, Repository) else identity_of(served.files()[0]).mtime_ns
    description = served.description
    operations = ZarrfsOperations(
        served.tree,
        mtime_ns=mtime_ns,
        request_timeout=spec.request_timeout,
        on_init=when_serving,
    )
    cache_timeout = REPOSITORY_CACHE_TIMEOUT_S if live else CACHE_TIMEOUT_S
    fuse_options: dict[str, str | bool | int] = {
        "ro": True,
        "fsname": escape_fuse_option(f"zarrfs:{redact(spec.source)}"),
        "subtype": FUSE_SUBTYPE,
        "kernel_cache": not live,
        # A repository's images are replaced under the same names: pages the kernel kept of one version
        # must not be read with another's (two readers of one chunk file could get a page of each).
        "direct_io": live,
        "attr_timeout": cache_timeout,
        "entry_timeout": cache_timeout,
        "negative_timeout": cache_timeout,
        "default_permissions": True,
        **_libfuse_version_options(),
        **spec.fuse_options,
    }

    log.info("serving %s at %s (%s)", redact(spec.source), spec.mountpoint, description)
    try:
        captured = CapturedStderr()
        FUSE(operations, spec.mountpoint, foreground=True, debug=spec.debug, **fuse_options)
    except RuntimeError as error:
        # libfuse also reports a loop ended by SIGINT/SIGTERM as an error; after a live mount that is the
        # normal way to stop, and libfuse has unmounted by then.
        if not went_live.is_set():
            message = _mount_failure(spec.mountpoint, error, captured.release() if captured else "")
            on_error(message)
            raise MountError(message) from None
        log.info("stopped by a signal (libfuse status %s)", error)
    finally:
        if captured is not None:
            captured.release()
        lock.release()
        served.close()
    log.info("unmounted %s", spec.mountpoint)


def configure_logging(debug: bool, stream: TextIO) -> None:
    """Log to ``stream``, a file object of its own: file descriptor 2 is left to libfuse and fusermount3."""
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, format=LOG_FORMAT, stream=stream)


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


def run_foreground(spec: MountSpec) -> None:
    """Serve in this process (``zarrfs mount -f``), logging to --log-file or stderr."""
    spec = dataclasses.replace(spec, mountpoint=resolve(spec.mountpoint))
    lock = prepare_mount(spec)
    try:
        if spec.log_file:
            log_fd = open_log_file(spec.log_file, _source_paths(spec), spec.mountpoint).fd
            stream = os.fdopen(log_fd, "a", buffering=1)
        else:
            stream = os.fdopen(os.dup(2), "w", buffering=1)
    except BaseException:
        lock.release()
        raise
    configure_logging(spec.debug, stream)
    try:
        serve(spec, lock, lambda: log.info("mount is live"), lambda message: None)
    except ZarrfsError as error:
        if spec.log_file:  # on stderr, the command's own error line says it
            log.error("%s", error)
        raise


def mount_background(spec: MountSpec) -> DaemonLog:
    """Start the daemon and return its log once the mount is live; raise MountError otherwise.

    The daemon is this process forked after its imports, which saves starting a second interpreter and
    importing everything again (about half of the mount time). Call it only while this process runs a
    single thread (the ``zarrfs`` command does): a fork copies just the calling thread.
    """
    spec = dataclasses.replace(spec, mountpoint=resolve(spec.mountpoint))
    lock = prepare_mount(spec)  # checked here, in the parent, so that these errors need no process start
    try:
        if spec.log_file:
            daemon_log = open_log_file(spec.log_file, _source_paths(spec), spec.mountpoint)
        else:
            daemon_log = open_default_log(_source_paths(spec), spec.mountpoint)
        from zarrfs.frontends.fuse_binding import fuse_class

        fuse_class()  # loads libfuse once, before the fork

        _start_daemon(spec, lock, daemon_log)
    finally:
        lock.release()
    return daemon_log


class _Cancellation:
    """While the daemon starts, SIGINT (Ctrl-C), SIGTERM and SIGHUP are noted instead of ending ``zarrfs
    mount`` at once: it first stops the daemon and removes any mount that daemon made."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.received: list[int] = []
        self._previous = {signum: signal.signal(signum, self._note) for signum in self.SIGNALS}

    def _note(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signum)

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def ignore(self) -> None:
        """A second Ctrl-C must not cut the cleanup short."""
        for signum in self.SIGNALS:
            signal.signal(signum, signal.SIG_IGN)

    def resume(self) -> NoReturn:
        """End as the first signal would have ended this process."""
        self.restore()
        if self.received[0] == signal.SIGINT:
            raise KeyboardInterrupt
        sys.exit(128 + self.received[0])


def _start_daemon(spec: MountSpec, lock: MountPointLock, daemon_log: DaemonLog) -> None:
    if threading.active_count() != 1:
        raise RuntimeError("the daemon must be forked from a single-threaded process")
    read_end, write_end = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    cancellation = _Cancellation()
    try:
        pid = os.fork()
        if pid == 0:
            cancellation.restore()
            os.close(read_end)
            _run_daemon(spec, lock, daemon_log.fd, ReadyPipe(write_end))  # never returns
        os.close(daemon_log.fd)
        os.close(write_end)
        message = _wait_for_report(read_end, cancellation)
        if message == READY_MESSAGE:
            return
        cancellation.ignore()
        _abandon(pid, spec.mountpoint, grace=EXIT_GRACE_S if message else 0.0)
        if cancellation.received:
            cancellation.resume()
        raise MountError(message or f"the daemon exited before the mount was live; see {daemon_log.path}")
    finally:
        cancellation.restore()


def _run_daemon(spec: MountSpec, lock: MountPointLock, log_fd: int, ready_pipe: ReadyPipe) -> NoReturn:
    """The forked daemon: a session of its own (it survives the shell that started the mount, and its
    Ctrl-C), stdin from /dev/null, stdout and stderr to the log file; serves until unmounted."""
    code = 2
    try:
        os.setsid()
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        configure_logging(spec.debug, os.fdopen(log_fd, "a", buffering=1))
        code = _serve_reporting(spec, lock, ready_pipe)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # the parent's exit handlers (click's, atexit's) are not the daemon's


def _serve_reporting(spec: MountSpec, lock: MountPointLock, ready_pipe: ReadyPipe) -> int:
    """Serve; returns the exit status, and sends any failure before the mount went live to the parent."""

    def on_live() -> None:
        log.info("mount is live")
        ready_pipe.send(READY_MESSAGE)

    try:
        serve(spec, lock, on_live, ready_pipe.send)
    except ZarrfsError as error:
        log.error("%s", error)
        return 1
    except Exception as error:  # a bug: the traceback goes to the log, one line to the waiting parent
        log.exception("daemon failed")
        ready_pipe.send(f"internal error: {type(error).__name__}: {error} (traceback in the log)")
        return 2
    return 0


def _wait_for_report(read_end: int, cancellation: _Cancellation) -> str:
    """The daemon's report line; "" if it ended without one, or the wait was cancelled or timed out."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    received = b""
    with os.fdopen(read_end, "rb", buffering=0) as pipe:
        while not cancellation.received and b"\n" not in received:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return f"the daemon did not report a live mount within {READY_TIMEOUT_S:.0f} s; stopped it"
            readable, _, _ = select.select([pipe], [], [], min(remaining, 0.1))
            if readable:
                chunk = pipe.read(4096)
                if not chunk:
                    break
                received += chunk
    return "" if cancellation.received else received.decode(errors="replace").strip()


def _group_gone(pid: int, timeout: float) -> bool:
    """Wait until the daemon ``pid`` and the rest of its process group (a fusermount3 it started) are gone."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            try:
                os.kill(pid, 0)  # before its setsid() the daemon is in our group
            except ProcessLookupError:
                return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def _signal_daemon(pid: int, signum: int) -> None:
    for send in (os.killpg, os.kill):
        with contextlib.suppress(ProcessLookupError):
            send(pid, signum)


def _abandon(pid: int, mountpoint: str, grace: float) -> None:
    """Stop a daemon that will not serve (after ``grace`` seconds to exit by itself), and remove any mount it
    made: the mount point is still locked, so a zarrfs mount there now is that daemon's."""
    if not _group_gone(pid, grace):
        _signal_daemon(pid, signal.SIGTERM)  # libfuse unmounts on SIGTERM once it serves
        if not _group_gone(pid, STOP_TIMEOUT_S):
            _signal_daemon(pid, signal.SIGKILL)
            _group_gone(pid, STOP_TIMEOUT_S)
    left = mount_table().get(mountpoint)
    if left is not None and left.is_zarrfs:
        log.warning("removing the mount the stopped daemon left at %s", mountpoint)
        unmount(mountpoint, lazy=True)
