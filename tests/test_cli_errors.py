"""Bad input at mount time: one clear line, a non-zero exit, no traceback, nothing left mounted."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from mounting import is_mounted, mounted, require_fuse, require_root, require_tools, zarrfs
from tiff_cases import write_bad_files


@pytest.fixture(scope="module")
def good_tiff(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("good") / "good.tif"
    tifffile.imwrite(path, np.arange(300 * 200, dtype=np.uint16).reshape(300, 200), tile=(64, 64))
    return path


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_bad_files(tmp_path_factory.mktemp("bad"))


def assert_clean_failure(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one error line, got: {result.stderr!r}"
    assert lines[0].startswith("zarrfs: error: "), lines[0]
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"


def _empty_mountpoint(tmp_path: Path) -> Path:
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    return mountpoint


@pytest.mark.parametrize(
    ("bad", "fragments"),
    [
        ("empty", ["source is empty"]),
        ("random_bytes", ["not a supported image format"]),
        ("png_named_tif", ["not a supported image format"]),
        ("truncated", ["truncated"]),
    ],
)
def test_bad_sources_fail_mount_and_info(
    bad: str, fragments: list[str], bad_files: dict[str, Path], tmp_path: Path
) -> None:
    require_fuse()
    source = bad_files[bad]
    mountpoint = _empty_mountpoint(tmp_path)
    assert_clean_failure(zarrfs("mount", source, mountpoint), *fragments, str(source))
    assert not is_mounted(mountpoint)
    assert_clean_failure(zarrfs("info", source), *fragments)


def test_missing_source_and_directory_source(tmp_path: Path) -> None:
    """A directory is a repository, which must not hold its own mount point (it would list itself)."""
    require_fuse()
    mountpoint = _empty_mountpoint(tmp_path)
    assert_clean_failure(zarrfs("mount", tmp_path / "nope.tif", mountpoint), "source not found")
    assert_clean_failure(zarrfs("mount", tmp_path, mountpoint), "lies inside the source")
    assert not is_mounted(mountpoint)


def _as_nobody(
    *args: str | os.PathLike[str], path_env: str | None = None
) -> subprocess.CompletedProcess[str]:
    environment = dict(os.environ, HOME="/tmp")
    if path_env is not None:
        environment["PATH"] = path_env
    return subprocess.run(
        [str(shutil.which("setpriv")), "--reuid=65534", "--regid=65534", "--clear-groups",
         sys.executable, "-m", "zarrfs", *map(str, args)],
        capture_output=True, text=True, timeout=60, check=False, env=environment,
    )  # fmt: skip


def test_unreadable_source(good_tiff: Path, shared_dir: Path) -> None:
    require_root("to drop privileges")
    require_tools("setpriv")
    secret = shared_dir / "secret.tif"
    shutil.copy(good_tiff, secret)
    secret.chmod(0o000)
    result = _as_nobody("info", secret)
    assert_clean_failure(result, "no permission to read source")


def test_missing_fusermount_for_unprivileged_users(good_tiff: Path, shared_dir: Path) -> None:
    require_fuse()  # with /dev/fuse there, the missing fusermount3 is what stops the mount
    require_root("to drop privileges")
    require_tools("setpriv")
    source = shared_dir / "good.tif"
    shutil.copy(good_tiff, source)
    mountpoint = _empty_mountpoint(shared_dir)
    mountpoint.chmod(0o777)
    # A PATH without fusermount: what a user sees on a node without the fuse3 package.
    bare_path = shared_dir / "bin"
    bare_path.mkdir()
    result = _as_nobody("mount", source, mountpoint, path_env=str(bare_path))
    assert_clean_failure(result, "fusermount3 not found", "fuse3")
    assert not is_mounted(mountpoint)


def test_missing_dev_fuse(good_tiff: Path, tmp_path: Path) -> None:
    require_root("for a mount namespace")
    require_tools("unshare", "mount", "mknod")
    mountpoint = _empty_mountpoint(tmp_path)
    # A private mount namespace with an empty /dev (only /dev/null): a container without /dev/fuse.
    script = (
        "mount -t tmpfs none /dev && mknod -m 666 /dev/null c 1 3 && "
        f"exec {sys.executable} -m zarrfs mount {good_tiff} {mountpoint}"
    )
    result = subprocess.run(
        ["unshare", "--mount", "sh", "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert_clean_failure(result, "/dev/fuse not found")


def test_mountpoint_problems(good_tiff: Path, tmp_path: Path) -> None:
    require_fuse()
    assert_clean_failure(zarrfs("mount", good_tiff, tmp_path / "missing"), "mount point does not exist")
    assert_clean_failure(zarrfs("mount", good_tiff, good_tiff), "mount point is not a directory")
    full = tmp_path / "full"
    full.mkdir()
    (full / "data.txt").write_text("x")
    assert_clean_failure(zarrfs("mount", good_tiff, full), "mount point is not empty")
    assert not is_mounted(full)
    with mounted(good_tiff, tmp_path / "mnt") as mnt:
        assert_clean_failure(zarrfs("mount", good_tiff, mnt), "already a mount")


def test_source_inside_the_mountpoint_is_refused(good_tiff: Path, tmp_path: Path) -> None:
    require_fuse()
    mountpoint = _empty_mountpoint(tmp_path)
    # Reading the source would recurse into the mount itself.
    result = zarrfs("mount", mountpoint / "img.tif", mountpoint)
    assert_clean_failure(result, "lies inside the mount point")
    assert not is_mounted(mountpoint)


def test_option_errors(good_tiff: Path) -> None:
    assert_clean_failure(zarrfs("info", good_tiff, "--chunks", "a,b"), "comma-separated integers")
    assert_clean_failure(zarrfs("info", good_tiff, "--cache-size", "lots"), "invalid size")
    assert_clean_failure(zarrfs("info", good_tiff, "--compressor", "zstd", "--clevel", "99"), "out of range")
    assert_clean_failure(zarrfs("info", good_tiff, "--series", "3"), "series")


def test_unmount_errors(tmp_path: Path) -> None:
    assert_clean_failure(zarrfs("unmount", tmp_path), "not mounted")
    assert_clean_failure(zarrfs("unmount", tmp_path / "missing"), "not mounted")


def test_help_is_complete() -> None:
    result = zarrfs("--help")
    assert result.returncode == 0
    for command in ("mount", "unmount", "info"):
        assert command in result.stdout
    mount_help = zarrfs("mount", "--help").stdout
    for option in ("--series", "--chunks", "--compressor", "--clevel", "--cache-size", "--foreground", "-o",
                   "--log-file"):  # fmt: skip
        assert option in mount_help
