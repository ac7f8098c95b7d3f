"""The mount lifecycle through the real command line: odd paths, libfuse's and fusermount3's reasons, zarrfs
mounts only, the daemon's log (never the source, never the mount point, always somewhere), concurrent mounts,
hung daemons and an interrupted mount.

Cases for a user other than root run as uid 65534 in a private mount namespace made for the test, where
/dev/fuse, /etc/fuse.conf and the FUSE control directory are the test's own: the machine's settings cannot
change the outcome, and a mount made there is invisible outside it and ends with its daemon.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from mounting import require_fuse, zarrfs
from user_namespace import AS_NOBODY, NOBODY, Namespace

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: mounts, namespaces, other users")

ZARRFS = [sys.executable, "-m", "zarrfs"]
IMAGE = np.arange(200 * 300, dtype=np.uint16).reshape(200, 300)


# ----------------------------------------------------------------------------------------------------------
# Helpers


@pytest.fixture
def source(shared_dir: Path) -> Path:
    """A small tiled TIFF that uid 65534 can read."""
    path = shared_dir / "image.tif"
    tifffile.imwrite(path, IMAGE, tile=(64, 64))
    path.chmod(0o644)
    return path


def mount_table() -> list[tuple[str, str, str]]:
    """(mount point, file system type, source) of every mount, unescaped: an oracle independent of zarrfs."""

    def unescape(field: str) -> str:
        return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), field)

    rows = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as table:
        for line in table:
            left, _, right = line.partition(" - ")
            fstype, mounted_from = right.split()[:2]
            rows.append((unescape(left.split()[4]), unescape(fstype), unescape(mounted_from)))
    return rows


def mounts_at(mountpoint: Path) -> list[tuple[str, str, str]]:
    return [row for row in mount_table() if row[0] == str(mountpoint)]


def daemon_pids(mountpoint: Path) -> list[int]:
    """Live processes whose command line is a ``zarrfs mount`` onto ``mountpoint``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            arguments = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        ours = b"zarrfs" in arguments and b"mount" in arguments and os.fsencode(mountpoint) in arguments
        if ours and state != "Z":
            found.append(int(entry.name))
    return found


def process_state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def wait_until(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting until {what}"
        time.sleep(0.05)


def kill_daemons(mountpoint: Path) -> None:
    for pid in daemon_pids(mountpoint):
        os.kill(pid, signal.SIGKILL)
        os.kill(pid, signal.SIGCONT)
    for _ in mounts_at(mountpoint):
        subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True, check=False)


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"expected one line, got {result.stderr!r}"
    assert "Traceback" not in result.stderr
    return lines[0]


def assert_error(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert one_line(result) == f"zarrfs: error: {expected}"


def assert_fuse_failure(result: subprocess.CompletedProcess[str], mountpoint: Path, reason: str) -> None:
    """libfuse's status numbers differ between versions; the mount point and the reason must be exact."""
    assert result.returncode == 1, (result.returncode, result.stderr)
    pattern = re.escape(f"zarrfs: error: FUSE mount failed at {mountpoint} (libfuse status ") + r"\d+\): "
    line = one_line(result)
    assert re.fullmatch(pattern + re.escape(reason), line), line


def run_zarrfs(
    *args: str | os.PathLike[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ZARRFS, *map(str, args)], capture_output=True, text=True, timeout=120, check=False, env=env
    )


def assert_serves_the_image(mountpoint: Path) -> None:
    np.testing.assert_array_equal(zarr.open_array(mountpoint / "0", mode="r", zarr_format=2)[...], IMAGE)


def finished(process: subprocess.Popen[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    stdout, stderr = process.communicate(timeout=timeout)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.fixture
def nobody_dir(shared_dir: Path) -> Path:
    """A directory of uid 65534, for its mount points and logs."""
    directory = shared_dir / "nobody"
    directory.mkdir()
    os.chown(directory, NOBODY, NOBODY)
    return directory


@pytest.fixture
def cleanup() -> Iterator[list[Path]]:
    """Mount points to clear after the test whatever happened: daemons killed, mounts removed."""
    mountpoints: list[Path] = []
    yield mountpoints
    for mountpoint in mountpoints:
        kill_daemons(mountpoint)


# ----------------------------------------------------------------------------------------------------------
# Item 9: odd characters in the source path and the mount point

ODD_NAMES = [
    "co,mma",
    "sp ace",
    "new\nline",
    "back\\slash",
    "both\\,of",
    "tab\tx",
    "ünï😀",
    "#hash",
    'q"uote',
]


@pytest.mark.parametrize("name", ODD_NAMES, ids=[repr(name) for name in ODD_NAMES])
def test_odd_characters_in_source_and_mount_point_paths(
    name: str, source: Path, tmp_path: Path, cleanup: list[Path]
) -> None:
    require_fuse()
    directory = tmp_path / name
    directory.mkdir()
    odd_source = directory / f"{name}.tif"
    shutil.copy(source, odd_source)
    mountpoint = directory / name / "mnt"
    mountpoint.mkdir(parents=True)
    cleanup.append(mountpoint)
    result = zarrfs("mount", odd_source, mountpoint, "--log-file", tmp_path / "zarrfs.log")
    assert (result.returncode, result.stderr) == (0, "")
    assert mounts_at(mountpoint) == [(str(mountpoint), "fuse.zarrfs", f"zarrfs:{odd_source}")]
    assert_serves_the_image(mountpoint)
    result = zarrfs("unmount", mountpoint)
    assert (result.returncode, result.stderr) == (0, "")
    assert mounts_at(mountpoint) == []


def test_odd_characters_through_fusermount3_as_a_user(source: Path, nobody_dir: Path, tmp_path: Path) -> None:
    require_fuse()
    odd_source = nobody_dir / "co,mma \\x.tif"
    shutil.copy(source, odd_source)
    odd_source.chmod(0o644)
    mountpoint = nobody_dir / "mount,point \\ü"
    mountpoint.mkdir()
    os.chown(mountpoint, NOBODY, NOBODY)
    namespace = Namespace(tmp_path / "ns", 0o666)
    mounted = namespace.run(*ZARRFS, "mount", odd_source, mountpoint, "--log-file", nobody_dir / "zarrfs.log")
    assert (mounted.returncode, mounted.stderr) == (0, "")
    [daemon] = daemon_pids(mountpoint)
    try:
        zgroup = finished(namespace.enter(daemon, "cat", mountpoint / ".zgroup"))
        assert zgroup.stdout.replace(" ", "").replace("\n", "") == '{"zarr_format":2}'
        table = finished(namespace.enter(daemon, "cat", "/proc/self/mountinfo"))
        escaped = str(mountpoint).replace("\\", "\\134").replace(" ", "\\040")
        [line] = [line for line in table.stdout.splitlines() if f" {escaped} " in line]
        assert " - fuse.zarrfs zarrfs:" in line
        unmounted = finished(namespace.enter(daemon, *ZARRFS, "unmount", mountpoint))
        assert (unmounted.returncode, unmounted.stderr) == (0, "")
        wait_until(lambda: not daemon_pids(mountpoint), 30, "the daemon ends after the unmount")
    finally:
        kill_daemons(mountpoint)


# ----------------------------------------------------------------------------------------------------------
# Item 10: libfuse's and fusermount3's reasons, /dev/fuse checked first


def test_an_unknown_fuse_option_is_reported_with_libfuses_reason(
    source: Path, tmp_path: Path, cleanup: list[Path]
) -> None:
    require_fuse()
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    cleanup.append(mountpoint)
    log = tmp_path / "zarrfs.log"
    for foreground in ([], ["-f"]):
        result = zarrfs("mount", source, mountpoint, "-o", "nosuchoption", "--log-file", log, *foreground)
        assert_fuse_failure(result, mountpoint, "fuse: unknown option(s): `-o nosuchoption'")
        assert mounts_at(mountpoint) == []
    assert "fuse: unknown option(s): `-o nosuchoption'" in log.read_text()


def test_a_user_without_access_to_dev_fuse_is_told_so(source: Path, nobody_dir: Path, tmp_path: Path) -> None:
    require_fuse()
    mountpoint = nobody_dir / "mnt"
    mountpoint.mkdir()
    os.chown(mountpoint, NOBODY, NOBODY)
    result = Namespace(tmp_path / "ns", 0o600).run(*ZARRFS, "mount", source, mountpoint)
    assert_error(
        result,
        "/dev/fuse is not accessible (Permission denied): ask an administrator to open it to users "
        "(the fuse3 package makes it mode 0666)",
    )
    assert not list(nobody_dir.rglob("*.log"))


def test_allow_other_without_user_allow_other_gives_fusermount3s_reason(
    source: Path, nobody_dir: Path, tmp_path: Path
) -> None:
    require_fuse()
    mountpoint = nobody_dir / "mnt"
    mountpoint.mkdir()
    os.chown(mountpoint, NOBODY, NOBODY)
    log = nobody_dir / "zarrfs.log"
    result = Namespace(tmp_path / "ns", 0o666).run(
        *ZARRFS, "mount", source, mountpoint, "-o", "allow_other", "--log-file", log
    )
    reason = "fusermount3: option allow_other only allowed if 'user_allow_other' is set in /etc/fuse.conf"
    assert_fuse_failure(result, mountpoint, reason)
    assert reason in log.read_text()
    assert daemon_pids(mountpoint) == []


def test_a_mount_point_the_user_cannot_write_gives_fusermount3s_reason(
    source: Path, shared_dir: Path, nobody_dir: Path, tmp_path: Path
) -> None:
    require_fuse()
    mountpoint = shared_dir / "roots"  # root's, mode 0755
    mountpoint.mkdir()
    result = Namespace(tmp_path / "ns", 0o666).run(
        *ZARRFS, "mount", source, mountpoint, "--log-file", nobody_dir / "zarrfs.log"
    )
    assert_fuse_failure(
        result, mountpoint, f"fusermount3: user has no write access to mountpoint {mountpoint}"
    )


# ----------------------------------------------------------------------------------------------------------
# Item 11: zarrfs acts on zarrfs mounts only


def test_unmount_leaves_other_file_systems_alone_and_mount_suggests_unmount_only_for_zarrfs(
    source: Path, tmp_path: Path
) -> None:
    require_fuse()
    other = tmp_path / "tmpfs"
    other.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "zarrfs-test", str(other)], check=True)
    try:
        (other / "kept.txt").write_text("still here")
        for lazy in ([], ["--lazy"]):
            result = zarrfs("unmount", *lazy, other)
            assert_error(
                result, f"not a zarrfs mount: {other} (file system type tmpfs); zarrfs unmounts only its own"
            )
            assert mounts_at(other) == [(str(other), "tmpfs", "zarrfs-test")]
            assert (other / "kept.txt").read_text() == "still here"
        empty = other / "empty"
        empty.mkdir()
        result = zarrfs("mount", source, other)
        assert_error(result, f"mount point is already a mount: {other} (file system type tmpfs, not zarrfs)")
    finally:
        subprocess.run(["umount", str(other)], check=True)
    [root_type] = [fstype for path, fstype, _ in mount_table() if path == "/"][-1:]
    result = zarrfs("mount", source, "/")
    assert_error(result, f"mount point is already a mount: / (file system type {root_type}, not zarrfs)")


# ----------------------------------------------------------------------------------------------------------
# Items 13 and 14: the daemon's log


def test_the_default_log_of_a_very_long_mount_point_fits_in_a_file_name(
    source: Path, tmp_path: Path, cleanup: list[Path]
) -> None:
    require_fuse()
    mountpoints = [tmp_path / first / ("b" * 200) / ("c" * 60) / "mnt" for first in ("a" * 100, "z" * 100)]
    state = tmp_path / "state"
    environment = dict(os.environ, XDG_STATE_HOME=str(state))
    for mountpoint in mountpoints:
        assert len(str(mountpoint)) > 300
        mountpoint.mkdir(parents=True)
        cleanup.append(mountpoint)
        result = run_zarrfs("mount", source, mountpoint, env=environment)
        assert (result.returncode, result.stderr) == (0, "")
        assert_serves_the_image(mountpoint)
    logs = sorted((state / "zarrfs").iterdir())
    assert len(logs) == 2  # one each: the names differ although their readable ends are the same
    for log in logs:
        assert len(os.fsencode(log.name)) <= 255 and log.name.endswith("_mnt-" + log.name[-20:-4] + ".log")
        assert "mount is live" in log.read_text()
    for mountpoint in mountpoints:
        assert zarrfs("unmount", mountpoint).returncode == 0


def test_without_a_home_directory_the_log_goes_to_a_private_temporary_directory(
    source: Path, tmp_path: Path, cleanup: list[Path]
) -> None:
    require_fuse()
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    cleanup.append(mountpoint)
    nowhere = tmp_path / "no-such-home"
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    environment = {key: value for key, value in os.environ.items() if key != "XDG_STATE_HOME"}
    environment.update(HOME=str(nowhere), TMPDIR=str(temporary))
    result = run_zarrfs("mount", source, mountpoint, env=environment)
    log = temporary / "zarrfs-0" / (str(mountpoint).strip("/").replace("/", "_") + ".log")
    assert result.returncode == 0
    assert one_line(result) == f"zarrfs: warning: there is no home directory; the daemon logs to {log}"
    assert "mount is live" in log.read_text()
    assert (temporary / "zarrfs-0").stat().st_mode & 0o777 == 0o700
    assert not nowhere.exists()  # a home that does not exist is not made
    assert zarrfs("unmount", mountpoint).returncode == 0


def test_a_user_without_a_home_directory_mounts_and_logs_to_the_temporary_directory(
    source: Path, nobody_dir: Path, tmp_path: Path
) -> None:
    require_fuse()
    mountpoint = nobody_dir / "mnt"
    mountpoint.mkdir()
    os.chown(mountpoint, NOBODY, NOBODY)
    temporary = nobody_dir / "tmp"
    temporary.mkdir()
    os.chown(temporary, NOBODY, NOBODY)
    # uid 65534's home in the password database is /nonexistent; HOME unset makes Python look there.
    environment = ["env", "-u", "HOME", "-u", "XDG_STATE_HOME", f"TMPDIR={temporary}"]
    namespace = Namespace(tmp_path / "ns", 0o666)
    result = namespace.run(*environment, *AS_NOBODY, *ZARRFS, "mount", source, mountpoint, as_nobody=False)
    log = temporary / f"zarrfs-{NOBODY}" / (str(mountpoint).strip("/").replace("/", "_") + ".log")
    try:
        assert result.returncode == 0, result.stderr
        assert one_line(result) == f"zarrfs: warning: there is no home directory; the daemon logs to {log}"
        assert "mount is live" in log.read_text()
        [daemon] = daemon_pids(mountpoint)
        unmounted = finished(namespace.enter(daemon, *ZARRFS, "unmount", mountpoint))
        assert (unmounted.returncode, unmounted.stderr) == (0, "")
    finally:
        kill_daemons(mountpoint)


def test_a_log_file_that_cannot_be_written_is_one_line(
    source: Path, tmp_path: Path, shared_dir: Path, nobody_dir: Path, cleanup: list[Path]
) -> None:
    require_fuse()
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    cleanup.append(mountpoint)
    below_a_file = source.parent / "image.tif" / "zarrfs.log"
    for foreground in ([], ["-f"]):
        result = zarrfs("mount", source, mountpoint, "--log-file", below_a_file, *foreground)
        assert_error(result, f"cannot write the log file {below_a_file}: Not a directory")
        assert mounts_at(mountpoint) == []
    users_mountpoint = nobody_dir / "mnt"
    users_mountpoint.mkdir()
    os.chown(users_mountpoint, NOBODY, NOBODY)
    roots = shared_dir / "roots" / "zarrfs.log"  # a directory of root's, mode 0755
    roots.parent.mkdir()
    for foreground in ([], ["-f"]):
        command = [*ZARRFS, "mount", source, users_mountpoint, "--log-file", roots, *foreground]
        result = Namespace(tmp_path / f"ns{len(foreground)}", 0o666).run(*command)
        assert_error(result, f"cannot write the log file {roots}: Permission denied")
        assert daemon_pids(users_mountpoint) == []


def test_a_log_file_that_is_the_source_or_in_the_mount_point_is_refused(
    source: Path, tmp_path: Path, cleanup: list[Path]
) -> None:
    require_fuse()
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    cleanup.append(mountpoint)
    before = (source.read_bytes(), source.stat().st_mtime_ns)
    symlink = tmp_path / "link.tif"
    symlink.symlink_to(source)
    hard_link = tmp_path / "hard.tif"
    os.link(source, hard_link)
    for log in (source, symlink, hard_link):
        for foreground in ([], ["-f"]):
            result = zarrfs("mount", source, mountpoint, "--log-file", log, *foreground)
            assert_error(result, f"log file {log} is the source image {source}; the log must go elsewhere")
    inside = mountpoint / "zarrfs.log"
    result = zarrfs("mount", source, mountpoint, "--log-file", inside)
    assert_error(result, f"log file {inside} lies inside the mount point {mountpoint}; put it elsewhere")
    assert (source.read_bytes(), source.stat().st_mtime_ns) == before
    assert list(mountpoint.iterdir()) == []
    assert mounts_at(mountpoint) == []


# ----------------------------------------------------------------------------------------------------------
# Item 15: concurrent mounts, a stopped daemon, an interrupted mount


def test_concurrent_mounts_onto_one_mount_point_mount_once(
    slow_source: Path, tmp_path: Path, cleanup: list[Path]
) -> None:
    # The source takes each daemon about 2 s to open: every run is past its checks before the first mounts.
    require_fuse()
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    cleanup.append(mountpoint)
    runs = [
        subprocess.Popen(
            [*ZARRFS, "mount", slow_source, mountpoint, "--log-file", tmp_path / f"{number}.log"],
            stderr=subprocess.PIPE,
            text=True,
        )
        for number in range(5)
    ]
    results = [finished(run) for run in runs]
    assert sorted(result.returncode for result in results) == [0, 1, 1, 1, 1]
    for result in results:
        if result.returncode:
            assert one_line(result) == (
                f"zarrfs: error: mount point is already a mount: {mountpoint} "
                f"(first run: zarrfs unmount {mountpoint})"
            )
    assert len(mounts_at(mountpoint)) == 1
    assert len(daemon_pids(mountpoint)) == 1
    assert zarr.open_array(mountpoint / "0", mode="r", zarr_format=2).shape == (20000, 8, 8)
    assert zarrfs("unmount", mountpoint).returncode == 0
    assert mounts_at(mountpoint) == []


def test_mounting_onto_a_stopped_daemons_mount_point_returns_and_lazy_unmount_frees_its_readers(
    source: Path, tmp_path: Path, cleanup: list[Path]
) -> None:
    require_fuse()
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    cleanup.append(mountpoint)
    assert zarrfs("mount", source, mountpoint, "--log-file", tmp_path / "zarrfs.log").returncode == 0
    assert_serves_the_image(mountpoint)
    [daemon] = daemon_pids(mountpoint)
    os.kill(daemon, signal.SIGSTOP)  # every request to it now waits
    started = time.monotonic()
    result = zarrfs("mount", source, mountpoint, timeout=60)
    assert_error(
        result,
        f"mount point {mountpoint} is a zarrfs mount whose daemon does not answer (stopped or hung); "
        f"clear it with: zarrfs unmount --lazy {mountpoint}",
    )
    assert time.monotonic() - started < 30
    reader = subprocess.Popen(
        [sys.executable, "-c", f"import os; os.statvfs({str(mountpoint)!r})"],
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1)
    assert reader.poll() is None  # blocked on the stopped daemon
    unmounted = zarrfs("unmount", "--lazy", mountpoint, timeout=60)
    assert (unmounted.returncode, unmounted.stderr) == (0, "")
    assert mounts_at(mountpoint) == []
    # Its connection was cut: the reader fails now, while the daemon is still stopped.
    assert reader.wait(timeout=30) != 0
    assert "Software caused connection abort" in (reader.stderr.read() if reader.stderr else "")
    assert process_state(daemon) == "T"


def test_a_user_is_told_when_lazy_unmount_cannot_free_the_readers_of_a_stopped_daemon(
    source: Path, nobody_dir: Path, tmp_path: Path
) -> None:
    require_fuse()
    mountpoint = nobody_dir / "mnt"
    mountpoint.mkdir()
    os.chown(mountpoint, NOBODY, NOBODY)
    namespace = Namespace(tmp_path / "ns", 0o666)
    mounted = namespace.run(*ZARRFS, "mount", source, mountpoint, "--log-file", nobody_dir / "zarrfs.log")
    assert (mounted.returncode, mounted.stderr) == (0, "")
    [daemon] = daemon_pids(mountpoint)
    [connection] = [
        line.split()[2].split(":")[1]
        for line in Path(f"/proc/{daemon}/mountinfo").read_text().splitlines()
        if line.split()[4] == str(mountpoint)
    ]
    try:
        os.kill(daemon, signal.SIGSTOP)
        reader = namespace.enter(daemon, sys.executable, "-c", f"import os; os.statvfs({str(mountpoint)!r})")
        time.sleep(1)
        assert reader.poll() is None
        unmounted = finished(namespace.enter(daemon, *ZARRFS, "unmount", "--lazy", mountpoint))
        assert unmounted.returncode == 0
        assert one_line(unmounted) == (
            f"zarrfs: warning: {mountpoint} was detached, but its daemon does not answer (stopped or hung) "
            f"and its FUSE connection could not be cut: processes reading files in it stay blocked until "
            f"the daemon is killed or root runs 'echo 1 > /sys/fs/fuse/connections/{connection}/abort'"
        )
        assert reader.poll() is None  # as the warning says
    finally:
        kill_daemons(mountpoint)
    assert reader.wait(timeout=30) != 0


@pytest.fixture(scope="module")
def slow_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stack of 20,000 tiny pages: opening it takes the daemon about 2 s, a window for Ctrl-C."""
    path = tmp_path_factory.mktemp("slow") / "stack.tif"
    tifffile.imwrite(path, np.zeros((20000, 8, 8), np.uint8), photometric="minisblack", metadata=None)
    return path


def _forked_daemon(parent: subprocess.Popen[str]) -> int | None:
    """The daemon the ``zarrfs mount`` process forked (a child with the same command line), once it exists."""
    try:
        children = Path(f"/proc/{parent.pid}/task/{parent.pid}/children").read_text().split()
        command = Path(f"/proc/{parent.pid}/cmdline").read_bytes()
        return next(
            (int(pid) for pid in children if Path(f"/proc/{pid}/cmdline").read_bytes() == command), None
        )
    except OSError:
        return None


@pytest.mark.parametrize("moment", ["daemon forked", "daemon serving"])
def test_ctrl_c_on_mount_stops_the_daemon_and_leaves_nothing_mounted(
    moment: str, slow_source: Path, tmp_path: Path, cleanup: list[Path]
) -> None:
    require_fuse()
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    cleanup.append(mountpoint)
    log = tmp_path / "zarrfs.log"
    parent = subprocess.Popen(
        [*ZARRFS, "mount", str(slow_source), str(mountpoint), "--log-file", str(log)],
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_until(lambda: _forked_daemon(parent) is not None, 60, "the daemon is forked")
    daemon = _forked_daemon(parent)
    if moment == "daemon serving":  # the source is open; the mount is being made or just made
        wait_until(lambda: log.exists() and "serving" in log.read_text(), 60, "the daemon mounts")
    parent.send_signal(signal.SIGINT)
    result = finished(parent)
    if result.returncode in (0, -signal.SIGINT):  # live before Ctrl-C (which then ended the finished command)
        assert moment == "daemon serving" and len(mounts_at(mountpoint)) == 1
        assert zarrfs("unmount", mountpoint).returncode == 0
        return
    assert (result.returncode, result.stderr) == (130, "")
    # The daemon is gone once `zarrfs mount` has returned, and no mount comes up later.
    assert daemon is not None and not Path(f"/proc/{daemon}").exists()
    time.sleep(3)
    assert mounts_at(mountpoint) == []
    assert daemon_pids(mountpoint) == []
