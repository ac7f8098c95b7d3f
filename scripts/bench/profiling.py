"""py-spy recordings (raw collapsed stacks) of a process, summarized as where its busy samples went."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path


def py_spy() -> str | None:
    candidate = Path(sys.executable).with_name("py-spy")
    return str(candidate) if candidate.exists() else shutil.which("py-spy")


class Profile:
    """py-spy record of ``pid`` (collapsed stacks) while the body runs; summarize() names the hot spots."""

    def __init__(self, pid: int, output: Path, rate: int = 250) -> None:
        self.output = output
        self.process: subprocess.Popen[bytes] | None = None
        binary = py_spy()
        if binary is None:
            return
        output.parent.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                binary,
                "record",
                "-p",
                str(pid),
                "-o",
                str(output),
                "--format",
                "raw",
                "-r",
                str(rate),
                "--nonblocking",
                "--threads",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)  # let py-spy attach

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def summarize(self, top: int = 8) -> list[str]:
        """Where the busy samples went: self time by function, then inclusive time of zarrfs functions.
        Samples whose innermost frame is a wait (idle workers, a thread waiting for another) are counted
        apart, so the percentages are of the samples that did work."""
        if self.process is None:
            return ["py-spy not installed: no profile (pip install py-spy)"]
        if not self.output.exists():
            return ["py-spy wrote no profile"]
        leaf: Counter[str] = Counter()
        inclusive: Counter[str] = Counter()
        busy = waiting = 0
        for line in self.output.read_text().splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            frames = [_frame_name(frame) for frame in stack.split(";") if not frame.startswith("thread ")]
            if not frames:
                continue  # a thread in native code only (libfuse waiting for the kernel)
            if frames[-1].split(" (")[0] in _WAITS:
                waiting += count
                continue
            busy += count
            leaf[frames[-1]] += count
            for frame in set(frames):
                if "zarrfs/" in frame or "mfusepy" in frame:
                    inclusive[frame] += count
        if busy == 0:
            return ["profile is empty (process idle or exited)"]
        lines = [
            f"{busy} busy samples ({waiting} more in waits); self time: "
            + "; ".join(f"{name} {100 * n / busy:.0f}%" for name, n in leaf.most_common(top))
        ]
        if inclusive:
            lines.append(
                "inclusive (zarrfs, mfusepy): "
                + "; ".join(f"{name} {100 * n / busy:.0f}%" for name, n in inclusive.most_common(top))
            )
        return lines


# Innermost frames that mean a thread is waiting, not working.
_WAITS = {
    "_worker",
    "Condition.wait",
    "Event.wait",
    "wait",
    "select",
    "EpollSelector.select",
    "sleep",
    "_wait_for_tstate_lock",
    "BaseSelectorEventLoop._read_from_self",
    "SimpleQueue.get",
    "get",
}


def _frame_name(frame: str) -> str:
    """'read (zarrfs/core/tree.py:123)' -> 'read (zarrfs/core/tree.py)'; site-packages paths shortened."""
    name, _, location = frame.partition(" (")
    location = location.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/work/main/", "lib/python3"):
        if marker in location:
            location = location.split(marker, 1)[1]
    if "/zarrfs/" in location:
        location = "zarrfs/" + location.split("/zarrfs/", 1)[1]
    return f"{name} ({location})" if location else name
