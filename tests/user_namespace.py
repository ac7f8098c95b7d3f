"""Commands as another user in a private mount namespace whose FUSE settings are the test's own."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

NOBODY = 65534
AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


class Namespace:
    """Commands as uid 65534 in a private mount namespace: /dev/fuse a node of the given mode, an empty
    /etc/fuse.conf (no user_allow_other) and no FUSE control files (/sys/fs/fuse/connections empty)."""

    def __init__(self, workdir: Path, fuse_mode: int) -> None:
        self.workdir = workdir
        workdir.mkdir()
        device = os.stat("/dev/fuse").st_rdev
        self.setup = (
            'mount -t tmpfs zarrfs-test "$0" && '
            f'mknod -m {fuse_mode:o} "$0/fuse" c {os.major(device)} {os.minor(device)} && '
            'mount --bind "$0/fuse" /dev/fuse && '
            ': > "$0/fuse.conf" && mount --bind "$0/fuse.conf" /etc/fuse.conf && '
            "mount -t tmpfs zarrfs-test /sys/fs/fuse/connections"
        )

    def run(
        self, *command: str | os.PathLike[str], as_nobody: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Make the namespace and run ``command`` in it; ``enter`` runs more commands in the same one."""
        user = AS_NOBODY if as_nobody else []
        script = f'{self.setup} && exec "$@"'
        return subprocess.run(
            ["unshare", "--mount", "sh", "-c", script, str(self.workdir), *user, *map(str, command)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def enter(
        self, pid: int, *command: str | os.PathLike[str], as_nobody: bool = True
    ) -> subprocess.Popen[str]:
        user = AS_NOBODY if as_nobody else []
        return subprocess.Popen(
            ["nsenter", f"--mount=/proc/{pid}/ns/mnt", *user, *map(str, command)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
