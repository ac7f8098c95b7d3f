"""Positional reads from the image files, safe for any number of threads at once."""

from __future__ import annotations

import os

import numpy as np

from zarrfs.errors import SourceError


class PixelFile:
    """A file opened read-only for positional reads (``os.pread`` needs no lock shared between threads)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))

    def read(self, length: int, offset: int) -> bytes:
        data = os.pread(self.fd, length, offset)
        if len(data) == length:
            return data
        parts = [data]
        received = len(data)
        while received < length:  # large reads may come back in pieces
            more = os.pread(self.fd, length - received, offset + received)
            if not more:
                raise SourceError(
                    f"file is truncated: needed bytes {offset}-{offset + length} but it ends at "
                    f"{offset + received}: {self.path}"
                )
            parts.append(more)
            received += len(more)
        return b"".join(parts)

    def read_window(self, offset: int, row_stride: int, rows: int, length: int) -> np.ndarray:
        """``length`` bytes from each of ``rows`` rows ``row_stride`` bytes apart, as uint8 (rows, length)."""
        if rows == 1 or row_stride <= 2 * length:
            # One read, wasting at most as many bytes as it keeps: cheaper than one system call per row.
            data = np.frombuffer(self.read((rows - 1) * row_stride + length, offset), np.uint8)
            return np.lib.stride_tricks.as_strided(data, (rows, length), (row_stride, 1))
        # A narrow window of wide rows: read only the window, row by row.
        parts = [self.read(length, offset + row * row_stride) for row in range(rows)]
        return np.frombuffer(b"".join(parts), np.uint8).reshape(rows, length)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
