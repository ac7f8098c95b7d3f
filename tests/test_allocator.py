"""The daemon's allocator keeps freed chunk memory for reuse (zarrfs/frontends/allocator.py)."""

from __future__ import annotations

import subprocess
import sys

PROGRAM = """
import sys
import numpy as np
from zarrfs.frontends.allocator import keep_freed_memory_for_reuse

def resident_bytes():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096

if sys.argv[1] == "tuned":
    keep_freed_memory_for_reuse()
chunk = np.ones(8 * 2**20, dtype=np.uint8)  # a chunk array, its pages touched
before = resident_bytes()
del chunk
print(before - resident_bytes())
"""


def _released_on_free(mode: str) -> int:
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM, mode], capture_output=True, text=True, check=True, timeout=60
    )
    return int(result.stdout)


def test_freed_chunk_memory_is_kept_for_reuse_in_the_daemon_only() -> None:
    assert _released_on_free("default") >= 7 * 2**20  # glibc hands an 8 MiB block back at once
    assert _released_on_free("tuned") < 2**20  # kept: the next chunk reuses its pages, no new faults
