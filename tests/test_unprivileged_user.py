"""A user account as on an HPC cluster, made for the test: it mounts through fusermount3, reads the image and
unmounts with ``zarrfs unmount``, with no privilege at all.

What such a user has, the test sets up in a private mount namespace (tests/user_namespace.py), so that the
machine's own settings neither help nor hinder: /dev/fuse of mode 0666 (what the fuse3 package's udev rule
sets, and what cluster nodes that offer FUSE have) and an /etc/fuse.conf without ``user_allow_other`` (not
needed to mount for oneself). The user runs this interpreter, with a copy of the zarrfs package under test in
a world-readable directory on PYTHONPATH: the repository may lie where other users cannot read (/root). Where
the interpreter or its environment lies below a directory other users cannot enter (pyenv in a /root of mode
0700), that directory is made enterable (o+x: not listable) for the test and given back its mode after it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile
from mounting import require_fuse, require_root, require_tools
from user_namespace import Namespace

import zarrfs


@pytest.fixture
def user() -> Iterator[pwd.struct_passwd]:
    """A new account with a home directory, removed afterwards with every process it still runs."""
    require_root("to add a user")
    require_tools("useradd", "userdel", "setpriv", "unshare")
    name = f"zarrfs-test-{os.getpid()}"
    subprocess.run(
        ["useradd", "--create-home", "--user-group", "--shell", "/bin/sh", name],
        check=True,
        capture_output=True,
    )
    account = pwd.getpwnam(name)
    try:
        yield account
    finally:
        for pid in processes_of(account.pw_uid):
            os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not processes_of(account.pw_uid), "the user's processes end")
        subprocess.run(["userdel", "--remove", name], check=True, capture_output=True)


@pytest.fixture
def enterable_interpreter() -> Iterator[None]:
    """Every directory above this interpreter, its environment and its libraries enterable by other users,
    for the test only: what a cluster's shared Python installation is."""
    import numpy

    needed = [Path(sys.executable), Path(sys.executable).resolve(), Path(os.__file__), Path(numpy.__file__)]
    closed = {
        directory: directory.stat().st_mode
        for path in needed
        for directory in path.parents
        if not directory.stat().st_mode & stat.S_IXOTH
    }
    for directory, mode in closed.items():
        directory.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
    try:
        yield
    finally:
        for directory, mode in closed.items():
            directory.chmod(stat.S_IMODE(mode))


def processes_of(uid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and entry.stat().st_uid == uid:
                found.append(int(entry.name))
        except FileNotFoundError:
            continue
    return found


def wait_until(condition: object, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting until {what}"
        time.sleep(0.05)


def as_user(account: pwd.struct_passwd, package_dir: Path) -> list[str]:
    """The prefix that runs a command as ``account`` would in a fresh login: its ids and groups, its home, a
    plain PATH (fusermount3 from the system) and the copied package."""
    return [
        "setpriv", f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}", "--init-groups",
        "env", "-i", f"HOME={account.pw_dir}", f"USER={account.pw_name}", f"LOGNAME={account.pw_name}",
        "PATH=/usr/local/bin:/usr/bin:/bin", f"PYTHONPATH={package_dir}",
    ]  # fmt: skip


def copy_package(directory: Path) -> Path:
    """The zarrfs package under test, readable by every user."""
    package_dir = directory / "python"
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(Path(zarrfs.__file__).parent, package_dir / "zarrfs", ignore=ignore)
    for path in [package_dir, *package_dir.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return package_dir


# Run as the user: mount, note the mount's line of the mount table, read level 0 through zarr, unmount.
SESSION = r"""
set -e
python=$1 source=$2 mountpoint=$3 out=$4
"$python" -m zarrfs mount "$source" "$mountpoint"
grep -F " $mountpoint " /proc/self/mountinfo > "$out/mountinfo"
"$python" -c 'import sys, numpy, zarr; numpy.save(sys.argv[2], zarr.open_array(sys.argv[1], mode="r")[...])' \
    "$mountpoint/0" "$out/level0.npy"
"$python" -m zarrfs unmount "$mountpoint"
if grep -qF " $mountpoint " /proc/self/mountinfo; then echo "still mounted"; fi
"""


def test_a_new_user_mounts_reads_and_unmounts_through_fusermount3(
    user: pwd.struct_passwd, enterable_interpreter: None, shared_dir: Path, tmp_path: Path
) -> None:
    require_fuse()
    source = shared_dir / "image.tif"
    image = np.random.default_rng(3).integers(0, 2**16, (3, 700, 900), dtype=np.uint16)
    tifffile.imwrite(source, image, tile=(128, 128), compression="zlib", photometric="minisblack")
    source.chmod(0o644)
    package_dir = copy_package(shared_dir)
    work = shared_dir / "work"  # the user's own: the mount point and what the session writes
    work.mkdir()
    os.chown(work, user.pw_uid, user.pw_gid)
    mountpoint = work / "image.ome.zarr"
    mountpoint.mkdir()
    os.chown(mountpoint, user.pw_uid, user.pw_gid)
    command = as_user(user, package_dir)

    runnable = subprocess.run(
        [*command, sys.executable, "-c", "import zarrfs, zarr, mfusepy"], capture_output=True, text=True
    )
    if runnable.returncode != 0:
        pytest.fail(
            f"user {user.pw_name} cannot run {sys.executable} with zarrfs and its dependencies "
            f"({runnable.stderr.strip().splitlines()[-1:]}): the interpreter and its environment must be "
            "readable, and their directories searchable, by other users"
        )

    session = Namespace(tmp_path / "ns", 0o666).run(
        *command, "sh", "-c", SESSION, "session", sys.executable, source, mountpoint, work, as_nobody=False
    )

    assert (session.returncode, session.stdout, session.stderr) == (0, "", "")
    [line] = (work / "mountinfo").read_text().splitlines()
    assert " - fuse.zarrfs zarrfs:" in line and f"user_id={user.pw_uid}," in line  # mounted by fusermount3
    np.testing.assert_array_equal(np.load(work / "level0.npy"), tifffile.imread(source))
    log_name = str(mountpoint).strip("/").replace("/", "_") + ".log"
    log = Path(user.pw_dir, ".local", "state", "zarrfs", log_name).read_text()
    assert "mount is live" in log and f"unmounted {mountpoint}" in log
    wait_until(lambda: not processes_of(user.pw_uid), "the daemon ends after the unmount")
