"""Helpers for tests that mount for real: run the CLI (mount returns once live) and always clean up."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import pytest

# Tests that need FUSE, root or system tools run by default: where they cannot, they fail and say why. Only
# an explicit ZARRFS_REQUIRE_FUSE=0 turns that into skips, which conftest counts at the end of the run. Tests
# that need root are skipped for other users unless ZARRFS_REQUIRE_FUSE=1 (CI, which runs as root) is set.
REQUIRE_FUSE = os.environ.get("ZARRFS_REQUIRE_FUSE", "")
FUSE_REQUIRED = REQUIRE_FUSE != "0"
ENVIRONMENT_SKIP = "environment: "  # the reason prefix of skips for want of FUSE, root or a tool


def fuse_unavailable_reason() -> str | None:
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing"
    if os.geteuid() != 0 and not os.access("/dev/fuse", os.R_OK | os.W_OK):
        return "no access to /dev/fuse"
    if shutil.which("fusermount3") is None:
        return "fusermount3 is missing (Debian package fuse3)"
    return None


def _cannot_run(reason: str, required: bool) -> NoReturn:
    if required:
        pytest.fail(f"this test must run here but {reason} (ZARRFS_REQUIRE_FUSE=0 skips such tests instead)")
    pytest.skip(ENVIRONMENT_SKIP + reason)


def require_fuse() -> None:
    """Fail where FUSE cannot work, or skip (counted) with ZARRFS_REQUIRE_FUSE=0."""
    reason = fuse_unavailable_reason()
    if reason is not None:
        _cannot_run(reason, FUSE_REQUIRED)


def require_tools(*names: str) -> None:
    """Fail where a system tool is missing (``make test`` installs them as root), or skip (counted) with
    ZARRFS_REQUIRE_FUSE=0."""
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        _cannot_run(f"{', '.join(missing)} missing (`make test` installs them as root)", FUSE_REQUIRED)


def require_root(why: str) -> None:
    """Skip (counted) for other users; fail with ZARRFS_REQUIRE_FUSE=1, where every test must run."""
    if os.geteuid() != 0:
        _cannot_run(f"it needs root {why}", REQUIRE_FUSE == "1")


def zarrfs(
    *args: str | os.PathLike[str],
    timeout: float = 120,
    preexec_fn: Callable[[], None] | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the real command line as a user would (``preexec_fn`` runs in the child first, e.g. limits;
    ``env`` is set on top of this process's environment)."""
    return subprocess.run(
        [sys.executable, "-m", "zarrfs", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        preexec_fn=preexec_fn,
        env=None if env is None else {**os.environ, **env},
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


def validate_ngff(mountpoint: Path) -> None:
    """ome-zarr-models' command line validates the image at ``mountpoint`` (every layout it finds)."""
    result = subprocess.run(
        [Path(sys.executable).parent / "ome-zarr-models", "validate", str(mountpoint)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
