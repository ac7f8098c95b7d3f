"""The FUSE operations refuse every change themselves (EROFS), not only through the kernel's ``ro`` flag: a
mount without it (a changed option, another front end on these operations) still changes nothing."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

FILES = [".zgroup", "zarr.json", "0/.zarray", "0/0/0", "0/c/0/0"]
DIRECTORIES = ["/", "0", "0/c", "0/0"]


@pytest.fixture
def operations(tmp_path: Path) -> Iterator[Any]:
    from zarrfs.core import open_dataset
    from zarrfs.core.options import serve_options
    from zarrfs.frontends.fuse_ops import ZarrfsOperations

    source = tmp_path / "image.tif"
    tifffile.imwrite(source, np.arange(128 * 96, dtype=np.uint16).reshape(128, 96), tile=(32, 32))
    dataset = open_dataset(source, serve_options(chunks="64,64", ngff="all"))
    ops = ZarrfsOperations(dataset.tree, mtime_ns=source.stat().st_mtime_ns, request_timeout=30)
    ops.init("/")
    try:
        yield ops
    finally:
        ops.destroy("/")
        dataset.close()


def _paths(names: list[str]) -> list[str]:
    return ["/" + name.lstrip("/") for name in names]


def _errno_of(call: Callable[[], object]) -> int | None:
    # libfuse's binding answers any OSError an operation raises with its errno.
    try:
        call()
    except OSError as error:
        return error.errno
    return None


def test_every_write_handler_refuses_with_erofs(operations: Any) -> None:
    ops = operations
    attempts: dict[str, Callable[[], object]] = {}
    for path in _paths(FILES):
        attempts |= {
            f"write {path}": lambda path=path: ops.write(path, b"x", 0, 0),
            f"truncate {path}": lambda path=path: ops.truncate(path, 0),
            f"unlink {path}": lambda path=path: ops.unlink(path),
            f"rename {path}": lambda path=path: ops.rename(path, "/moved"),
            f"chmod {path}": lambda path=path: ops.chmod(path, 0o666),
            f"chown {path}": lambda path=path: ops.chown(path, 1, 1),
            f"utimens {path}": lambda path=path: ops.utimens(path, (1, 1)),
            f"setxattr {path}": lambda path=path: ops.setxattr(path, "user.tag", b"x", 0),
            f"removexattr {path}": lambda path=path: ops.removexattr(path, "user.tag"),
            f"link {path}": lambda path=path: ops.link("/hardlink", path),
        }
        for flags in (os.O_WRONLY, os.O_RDWR, os.O_WRONLY | os.O_APPEND, os.O_RDONLY | os.O_TRUNC):
            attempts[f"open {path} flags {flags:#o}"] = lambda path=path, flags=flags: ops.open(path, flags)
        attempts[f"access {path} W_OK"] = lambda path=path: ops.access(path, os.W_OK)
    for directory in _paths(DIRECTORIES):
        inside = directory.rstrip("/") + "/new"
        attempts |= {
            f"create in {directory}": lambda inside=inside: ops.create(inside, 0o644),
            f"mkdir in {directory}": lambda inside=inside: ops.mkdir(inside, 0o755),
            f"mknod in {directory}": lambda inside=inside: ops.mknod(inside, 0o644, 0),
            f"symlink in {directory}": lambda inside=inside: ops.symlink(inside, "/.zgroup"),
            f"rmdir {directory}": lambda directory=directory: ops.rmdir(directory),
            f"chmod {directory}": lambda directory=directory: ops.chmod(directory, 0o777),
            f"utimens {directory}": lambda directory=directory: ops.utimens(directory, (1, 1)),
            f"setxattr {directory}": lambda directory=directory: ops.setxattr(directory, "user.tag", b"x", 0),
        }
    outcomes = {what: _errno_of(attempt) for what, attempt in attempts.items()}
    wrong = {
        what: errno.errorcode.get(code, code) if code else "accepted"
        for what, code in outcomes.items()
        if code != errno.EROFS
    }
    assert not wrong, f"not refused with EROFS: {wrong}"
    assert len(outcomes) > 100


def test_reading_still_works_through_the_same_operations(operations: Any) -> None:
    ops = operations
    for path in _paths(FILES):
        assert ops.open(path, os.O_RDONLY) == 0
        assert ops.access(path, os.R_OK) == 0
    data = bytes(ops.read("/0/0/0", 64 * 64 * 2, 0, 0))
    expected = np.arange(128 * 96, dtype="<u2").reshape(128, 96)[:64, :64]
    assert data == expected.tobytes()
