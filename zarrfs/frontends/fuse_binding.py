"""The libfuse binding (mfusepy), loaded when a mount is made, never on import.

mfusepy loads libfuse when it is imported, choosing the library by environment variables; it is imported here
on first use, with the variable set only while it loads, so that zarrfs changes no setting of the process.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import threading
from collections.abc import Callable, Iterator
from ctypes.util import find_library
from typing import Any

import numpy as np

from zarrfs.errors import MountError

_threads_with_kept_state: set[int] = set()


@contextlib.contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            del os.environ[name]
        else:
            os.environ[name] = before


@functools.cache
def load_fuse_binding() -> Any:
    """mfusepy bound to libfuse3 when present (1 MiB requests), else libfuse2 (128 KiB)."""
    chosen = os.environ.get("FUSE_LIBRARY_NAME")
    if chosen is None:
        # mfusepy prefers libfuse2 when both exist; libfuse3 carries 8x larger reads.
        chosen = next((name for name in ("fuse3", "fuse") if find_library(name)), None)
        if chosen is None:
            raise MountError("libfuse not found: install the fuse3 package (e.g. apt-get install fuse3)")
    try:
        with _environment("FUSE_LIBRARY_NAME", chosen):
            import mfusepy
    except (OSError, AttributeError) as error:
        raise MountError(f"cannot load libfuse: {error}") from None
    return mfusepy


def _keep_thread_state() -> None:
    """Keep this libfuse worker thread's Python thread state alive across callbacks.

    ctypes creates and destroys a thread state on every callback from a foreign thread, which doubles the CPU
    cost of a request; one extra, never released PyGILState_Ensure per thread makes it persistent."""
    ident = threading.get_ident()
    if ident not in _threads_with_kept_state:
        ctypes.pythonapi.PyGILState_Ensure()
        _threads_with_kept_state.add(ident)


def _address(data: memoryview) -> int:
    """Where a contiguous, possibly read-only buffer starts (ctypes takes only writable ones)."""
    address: int = np.frombuffer(data, dtype=np.uint8).__array_interface__["data"][0]
    return address


@functools.cache
def fuse_class() -> type:
    """mfusepy's FUSE with the thread-state fix applied to every callback, and reads that copy a view of a
    cached chunk straight into libfuse's buffer."""
    binding = load_fuse_binding()

    class FUSE(binding.FUSE):  # type: ignore[misc, name-defined]
        def _wrapper(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            _keep_thread_state()
            return super()._wrapper(func, *args, **kwargs)

        def read(self, path: bytes | None, buf: Any, size: int, offset: int, fip: Any) -> int:
            # mfusepy's read wants bytes from the operations: for a chunk file that would be one more copy
            # of every byte served (ours from the cached chunk, then its memmove).
            fh = fip.contents if self.raw_fi else fip.contents.fh
            name = None if path is None else path.decode(self.encoding, self.errors)
            data = self.operations.read(name, size, offset, fh)
            count = len(data)
            if count > size:
                raise ValueError(f"read returned {count} bytes for a request of {size}")
            if count:
                ctypes.memmove(buf, data if isinstance(data, bytes) else _address(data), count)
            return count

    return FUSE
