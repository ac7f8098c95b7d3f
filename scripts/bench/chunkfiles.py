"""The mount's files read with plain system calls (no client library): metadata, chunk grids, chunk files."""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any

import numpy as np


def read_chunk_file(path: str, buffer: bytearray) -> int:
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        view = memoryview(buffer)[:size]
        done = 0
        while done < size:
            n = os.readv(fd, [view[done:]])
            if n == 0:
                break
            done += n
        return done
    finally:
        os.close(fd)


def _json(*parts: str) -> Any:
    with open(os.path.join(*parts)) as handle:
        return json.load(handle)


def chunk_grid(mountpoint: str, level: str, v2: bool = False) -> tuple[tuple[int, ...], tuple[int, ...], int]:
    """(chunk grid, chunk shape, bytes per raw chunk) of a served level, from its v3 (or v2) metadata."""
    if v2:
        meta = _json(mountpoint, level, ".zarray")
        shape, chunks, dtype = meta["shape"], meta["chunks"], meta["dtype"]
    else:
        meta = _json(mountpoint, level, "zarr.json")
        shape, chunks = meta["shape"], meta["chunk_grid"]["configuration"]["chunk_shape"]
        dtype = meta["data_type"]
    grid = tuple(math.ceil(s / c) for s, c in zip(shape, chunks, strict=True))
    return grid, tuple(chunks), math.prod(chunks) * np.dtype(dtype).itemsize


def chunk_path(mountpoint: str, level: str, index: tuple[int, ...], v2: bool = False) -> str:
    return os.path.join(mountpoint, level, *([] if v2 else ["c"]), *map(str, index))


def plain_read_all(mountpoint: str) -> tuple[float, int]:
    """Every level-0 chunk file read with open/readv/close into one buffer: the mount's own serving rate."""
    grid, _, chunk_bytes = chunk_grid(mountpoint, "0")
    paths = [chunk_path(mountpoint, "0", index) for index in np.ndindex(*grid)]
    buffer = bytearray(chunk_bytes + 4096)
    start = time.perf_counter()
    total = sum(read_chunk_file(path, buffer) for path in paths)
    return time.perf_counter() - start, total


def latencies_ms(paths: list[str], buffer: bytearray) -> list[float]:
    """Milliseconds of open + read + close of each chunk file, in order."""
    latencies = []
    for path in paths:
        start = time.perf_counter()
        read_chunk_file(path, buffer)
        latencies.append((time.perf_counter() - start) * 1e3)
    return latencies


def levels_of(mountpoint: str) -> list[str]:
    group = _json(mountpoint, "zarr.json")
    return [dataset["path"] for dataset in group["attributes"]["ome"]["multiscales"][0]["datasets"]]


def center_chunk_region(shape: tuple[int, ...], chunks: tuple[int, ...]) -> tuple[slice, ...]:
    region = []
    for extent, chunk in zip(shape, chunks, strict=True):
        index = (math.ceil(extent / chunk) - 1) // 2
        region.append(slice(index * chunk, min((index + 1) * chunk, extent)))
    return tuple(region)
