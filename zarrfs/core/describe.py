"""A human-readable summary of what a dataset (or each series of a collection) serves, for ``zarrfs info``."""

from __future__ import annotations

import math
from collections.abc import Mapping

from zarrfs.core.collection import OME_XML, SeriesCollection
from zarrfs.core.dataset import Dataset, Layout
from zarrfs.core.options import human_bytes
from zarrfs.core.pyramid import ComputedLevel
from zarrfs.core.sharding import ShardedArray
from zarrfs.sources import PhysicalSize


def printable(text: str) -> str:
    """``text`` with every character a terminal would act on or not show (newlines, tabs, escape sequences
    and other control or format characters, bytes of a file name that are not UTF-8) written as a Python
    escape: metadata and file names print as what they are, and one line stays one line."""
    return "".join(char if char.isprintable() else _escape(char) for char in text)


def _escape(char: str) -> str:
    if "\udc80" <= char <= "\udcff":  # a byte that is not UTF-8, as Python decodes file names
        return f"\\x{ord(char) - 0xDC00:02x}"
    return char.encode("unicode_escape").decode("ascii")


def _layout_lines(layout: Layout) -> list[str]:
    lines = [f"  {layout.format.summary}"]
    for array, files in zip(layout.arrays, layout.files, strict=True):
        codec = "stored tiles passed through" if array.native is not None else array.encoding.name
        files_text = f"{math.prod(files.grid)} chunk files"
        if isinstance(files, ShardedArray):
            files_text = f"{math.prod(files.grid)} shard files of {files.shard_shape}"
        lines.append(f"    {array.level.name}/  codec {codec}, {files_text}")
    return lines


def _quantities(values: Mapping[str, PhysicalSize]) -> str:
    return ", ".join(f"{axis} {size.value:g} {size.unit or '(no unit)'}" for axis, size in values.items())


def describe(served: Dataset | SeriesCollection) -> str:
    """The dataset, or the collection's layout and then each series as a dataset."""
    if isinstance(served, Dataset):
        return _describe_dataset(served)
    count = len(served.datasets)
    lines = [
        f"source:    {served.path}",
        f"layout:    bioformats2raw: {count} series at 0/ to {count - 1}/ (serve one alone with --series N)",
        f"OME-XML:   {OME_XML if served.tree.stat(OME_XML) is not None else 'none (the source has none)'}",
    ]
    for index, (name, dataset) in enumerate(zip(served.names, served.datasets, strict=True)):
        lines.append(f"series {index}: {name} (at {index}/)")
        lines += ["  " + line for line in _describe_dataset(dataset).splitlines()]
    return "\n".join(map(printable, lines))


def _describe_dataset(dataset: Dataset) -> str:
    info = dataset.source.info
    physical = _quantities(info.physical_sizes)
    channels = ", ".join(
        f"{channel.name or f'Channel {i}'}" + (f" ({channel.color})" if channel.color else "")
        for i, channel in enumerate(info.channels)
    )
    compressor = dataset.compressor
    codec = compressor.name + (f" (level {compressor.level})" if compressor.level is not None else "")
    lines = [
        f"source:    {dataset.source.path}",
        f"format:    {info.description}",
        f"axes:      {', '.join(info.axes)}",
        f"physical:  {physical or 'unknown (scale 1 per pixel)'}",
        *([f"origin:    {_quantities(info.origin)}"] if info.origin else []),
        *(f"note:      {note}" for note in info.notes),
        f"channels:  {channels or 'unnamed'}",
        f"codec:     {codec}",
        f"cache:     {human_bytes(dataset.options.cache_bytes)}",
        "levels:",
    ]
    for level in dataset.levels:
        origin = f"computed ({level.method})" if isinstance(level, ComputedLevel) else "stored"
        size = human_bytes(math.prod(level.shape) * level.dtype.itemsize)
        lines.append(
            f"  {level.name}/  shape {level.shape}  chunks {level.chunks}  dtype {level.dtype.str}  "
            f"{origin}  {size} uncompressed"
        )
    lines.append(f"padding:   {_padding(dataset)}")
    lines.append(f"windows:   {dataset.windows.basis}")
    for index, window in enumerate(dataset.windows.channels):
        known = info.channels[index].name if index < len(info.channels) else None
        lines.append(
            f"  {known or f'Channel {index}'}: {window.start:g} to {window.end:g} "
            f"(slider {window.min:g} to {window.max:g})"
        )
    lines.append("layouts:")
    for layout in dataset.layouts:
        lines += _layout_lines(layout)
    return "\n".join(map(printable, lines))


def _padding(dataset: Dataset) -> str:
    """How many bytes the chunk files of every level hold (uncompressed) per pixel byte: edge chunks are
    served full size, and a copy of the mount copies them whole."""
    itemsize = dataset.levels[0].dtype.itemsize
    pixels = sum(math.prod(level.shape) for level in dataset.levels) * itemsize
    served = sum(math.prod(level.grid) * math.prod(level.chunks) for level in dataset.levels) * itemsize
    return (
        f"chunk files hold {served / pixels:.2f}x the pixel bytes ({human_bytes(served)} uncompressed for "
        f"{human_bytes(pixels)}; edge chunks are full size)"
    )
