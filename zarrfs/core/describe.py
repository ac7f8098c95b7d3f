"""A human-readable summary of what a dataset serves, for ``zarrfs info`` and the daemon log."""

from __future__ import annotations

import math

from zarrfs.core.dataset import Dataset


def _human_bytes(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def describe(dataset: Dataset) -> str:
    info = dataset.source.info
    physical = ", ".join(
        f"{axis} {size.value:g} {size.unit or '(no unit)'}" for axis, size in info.physical_sizes.items()
    )
    channels = ", ".join(
        f"{channel.name or f'Channel {i}'}" + (f" ({channel.color})" if channel.color else "")
        for i, channel in enumerate(info.channels)
    )
    codec = dataset.codec.name + (
        f" (level {dataset.codec.level})" if dataset.codec.level is not None else ""
    )
    lines = [
        f"source:    {dataset.source.path}",
        f"format:    {info.description}",
        f"axes:      {', '.join(info.axes)}",
        f"physical:  {physical or 'unknown (scale 1 per pixel)'}",
        f"channels:  {channels or 'unnamed'}",
        "layout:    OME-NGFF 0.4 on Zarr v2 (.zgroup, .zattrs, .zarray; '/'-nested chunk keys)",
        f"codec:     {codec}",
        f"cache:     {_human_bytes(dataset.cache.capacity_bytes)}",
        "arrays:",
    ]
    for array in dataset.arrays:
        files = math.prod(array.grid)
        lines.append(
            f"  {array.name}/  shape {array.shape}  chunks {array.chunks}  dtype {array.dtype.str}  "
            f"{files} chunk files ({'x'.join(map(str, array.grid))})  "
            f"{_human_bytes(math.prod(array.shape) * array.dtype.itemsize)} uncompressed"
        )
    keys = "/".join(f"<{axis}>" for axis in info.axes)
    lines.append(f"chunk key: <array>/{keys}  e.g. 0/{'/'.join('0' * len(info.axes))}")
    return "\n".join(lines)
