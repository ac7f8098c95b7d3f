"""Mounts for the bench: mounted and unmounted by the tests' helper (tests/mounting.py), timed, their daemon
found for its CPU and memory figures, and every one unmounted also on errors and signals."""

from __future__ import annotations

import contextlib
import gc
import time
from pathlib import Path

import psutil

from tests.mounting import is_mounted, mount, unmount

from .host import current_rss_bytes, peak_rss_bytes

_ACTIVE: list[Mount] = []


def find_daemon(mountpoint: str) -> int | None:
    # The daemon is the forked `zarrfs mount SOURCE MOUNTPOINT` command, once that has returned.
    for process in psutil.process_iter(["pid", "cmdline"]):
        cmdline = process.info.get("cmdline") or []
        if "mount" in cmdline and mountpoint in cmdline:
            return int(process.info["pid"])
    return None


class MountFailed(RuntimeError):
    """``zarrfs mount`` exited non-zero; ``reason`` is its last line (``zarrfs: error: ...``)."""

    def __init__(self, command: str, stderr: str) -> None:
        lines = stderr.strip().splitlines()
        self.reason = lines[-1] if lines else "no output"
        super().__init__(f"mount failed: {command}: {stderr.strip()}")


# What a client raises when a mount answers EIO or lacks a file: OSError (system calls), ValueError and
# RuntimeError (tensorstore), KeyError (zarr-python). A row that meets one is not measured, the run goes on.
READ_FAILED = (OSError, RuntimeError, ValueError, KeyError)


def failure(error: BaseException) -> str:
    """One line for a row that was not measured."""
    first = str(error).strip().splitlines()
    return f"{type(error).__name__}: {first[0][:300] if first else ''}"


class Mount:
    """``with Mount(src, mnt, options) as m``: m.seconds (time until live), m.pid, m.peak_rss after exit."""

    def __init__(self, source: Path | str, mountpoint: Path, options: list[str], log_dir: Path) -> None:
        self.source = source if isinstance(source, str) else source.resolve()  # a path, or a URL
        self.path = mountpoint.resolve()
        self.mountpoint = str(self.path)
        self.options = options
        self.log_file = log_dir / (mountpoint.name + ".log")
        self.seconds = 0.0
        self.pid: int | None = None
        self.start_rss = 0
        self.peak_rss = 0

    def __enter__(self) -> Mount:
        self.path.mkdir(parents=True, exist_ok=True)
        if is_mounted(self.path):  # left by an interrupted run, possibly stale
            unmount(self.path)
        start = time.perf_counter()
        result = mount(self.source, self.path, *self.options, log_file=self.log_file)
        self.seconds = time.perf_counter() - start
        if result.returncode != 0:
            raise MountFailed(" ".join(map(str, result.args)), result.stderr)
        _ACTIVE.append(self)
        self.pid = find_daemon(self.mountpoint)
        if self.pid is not None:
            self.start_rss = current_rss_bytes(self.pid)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self not in _ACTIVE:
            return
        _ACTIVE.remove(self)
        if self.pid is not None:
            with contextlib.suppress(OSError):
                self.peak_rss = peak_rss_bytes(self.pid)
        gc.collect()  # drop file handles a client may still hold
        unmount(self.path, attempts=6)
        self._wait_for_daemon()

    def _wait_for_daemon(self) -> None:
        if self.pid is None:
            return
        try:
            process = psutil.Process(self.pid)
            process.wait(timeout=20)
        except psutil.NoSuchProcess:
            return
        except psutil.TimeoutExpired:
            print(f"  daemon {self.pid} still running after unmount: stopping it", flush=True)
            with contextlib.suppress(psutil.NoSuchProcess):
                process.terminate()
                process.wait(timeout=10)


def unmount_all() -> None:
    for active in list(_ACTIVE):
        with contextlib.suppress(Exception):
            active.close()


def on_signal(signum: int, _frame: object) -> None:
    unmount_all()
    raise SystemExit(128 + signum)
