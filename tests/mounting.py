"""Helpers for tests that mount for real: run the CLI (mount returns once live) and always clean up."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

FUSE_REQUIRED = os.environ.get("ZARRFS_REQUIRE_FUSE") == "1"


def fuse_unavailable_reason() -> str | None:
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing"
    if os.geteuid() != 0 and not os.access("/dev/fuse", os.R_OK | os.W_OK):
        return "no access to /dev/fuse"
    return None


def require_fuse() -> None:
    """Skip where FUSE cannot work, except in CI (ZARRFS_REQUIRE_FUSE=1), where that is a failure."""
    reason = fuse_unavailable_reason()
    if reason is not None:
        if FUSE_REQUIRED:
            pytest.fail(f"FUSE tests must run here but {reason}")
        pytest.skip(reason)


def zarrfs(
    *args: str | os.PathLike[str], timeout: float = 120, preexec_fn: Callable[[], None] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real command line as a user would (``preexec_fn`` runs in the child first, e.g. limits)."""
    return subprocess.run(
        [sys.executable, "-m", "zarrfs", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        preexec_fn=preexec_fn,
    )


def is_mounted(mountpoint: Path) -> bool:
    with open("/proc/self/mountinfo") as mounts:
        return any(line.split()[4] == str(mountpoint) for line in mounts)


def force_unmount(mountpoint: Path) -> None:
    if is_mounted(mountpoint):
        subprocess.run(["fusermount3", "-uz", str(mountpoint)], capture_output=True, check=False)


def mount(
    source: str | os.PathLike[str], mountpoint: str | os.PathLike[str], *options: str, log_file: Path
) -> subprocess.CompletedProcess[str]:
    """``zarrfs mount`` as a user runs it: returns once the mount is live (or failed)."""
    return zarrfs("mount", source, mountpoint, "--log-file", log_file, *options)


def unmount(mountpoint: Path, attempts: int = 1) -> subprocess.CompletedProcess[str]:
    """``zarrfs unmount``, tried ``attempts`` times while the mount stays busy (a client may still be closing
    a file), then detached lazily if still mounted; returns the last ``zarrfs unmount`` result."""
    for attempt in range(attempts):
        if attempt:
            time.sleep(0.5 * attempt)
        result = zarrfs("unmount", mountpoint)
        if result.returncode == 0 or not is_mounted(mountpoint):
            break
    force_unmount(mountpoint)
    return result


@contextlib.contextmanager
def mounted(source: Path, mountpoint: Path, *options: str) -> Iterator[Path]:
    """Mount ``source`` with the CLI, yield the mount point, always unmount."""
    require_fuse()
    mountpoint.mkdir(parents=True, exist_ok=True)
    result = mount(source, mountpoint, *options, log_file=mountpoint.parent / "zarrfs.log")
    assert result.returncode == 0, f"mount failed: {result.stderr}"
    assert is_mounted(mountpoint)
    try:
        yield mountpoint
    finally:
        result = unmount(mountpoint)
        assert result.returncode == 0, result.stderr
