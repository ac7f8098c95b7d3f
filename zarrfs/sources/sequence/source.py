"""A sequence of image files served as one image, stacked along a new axis (z, t or c).

Opening reads the metadata of the first file only (and stats the others): the first file's reader, shape,
dtype, levels, physical sizes and channels stand for every file. The others are opened on the first read of
their planes (see members.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from zarrfs.errors import SourceError
from zarrfs.sources.base import CANONICAL_AXES, Channel, ImageSource, Level, NativeBlocks, SourceInfo
from zarrfs.sources.identity import FileIdentity
from zarrfs.sources.registry import Location, Reader
from zarrfs.sources.sequence.members import Members
from zarrfs.sources.sequence.names import Placement

SEQUENCE_AXES = "ztc"
# Files kept open at once (a TIFF holds two descriptors): enough for every plane a chunk or a client's
# parallel reads touch, far below the usual limit of 1024 descriptors.
MAX_OPEN_FILES = 64


def _insert(values: Sequence[Any], at: int, value: Any) -> tuple[Any, ...]:
    return (*values[:at], value, *values[at:])


class SequenceSource(ImageSource):
    """The files of ``paths``, plane ``i`` of ``axis`` holding ``paths[placement.files[i]]``, each opened by
    ``reader`` (the one that claims the first file)."""

    def __init__(
        self,
        named: str,
        paths: Sequence[str],
        placement: Placement,
        axis: str,
        reader: Reader,
        block_cache_bytes: int,
        max_open_files: int = MAX_OPEN_FILES,
    ) -> None:
        if axis not in SEQUENCE_AXES:
            raise SourceError(f"--sequence-axis must be one of {', '.join(SEQUENCE_AXES)}, not {axis!r}")
        self.path = named
        self._paths = tuple(paths)
        self._placement = placement
        try:
            # Taken before the first file is read: a change from here on is seen.
            identities = [FileIdentity.of(path) for path in self._paths]
        except OSError as error:
            raise SourceError(f"cannot read sequence file {error.filename}: {error.strerror}") from None
        per_file_cache = max(1, block_cache_bytes // max_open_files)

        def open_file(path: str) -> ImageSource:
            return reader.open(Location.of(path), {}, per_file_cache)

        first_position = placement.files[min(placement.files)]
        first = open_file(self._paths[first_position])
        self._first_info = first.info
        axes = self._first_info.axes
        if axis in axes:
            first.close()
            free = ", ".join(a for a in SEQUENCE_AXES if a not in axes) or "none"
            raise SourceError(
                f"--sequence-axis {axis}: the files already have a {axis} axis (axes {axes}); "
                f"stack them along another one (free: {free})"
            )
        self._axis = "".join(a for a in CANONICAL_AXES if a in axes + axis).index(axis)
        self._native = [first.native_blocks(level) for level in range(len(self._first_info.levels))]
        self._members = Members(self._paths, identities, open_file, self._mismatch, max_open_files)
        self.info = self._sequence_info(axis, reader.name)
        first.close()

    def _sequence_info(self, axis: str, format_name: str) -> SourceInfo:
        first, at, placement = self._first_info, self._axis, self._placement
        channels: Sequence[Channel] = first.channels
        if axis == "c":  # a channel per file, named after it
            names = {plane: os.path.basename(self._paths[at]) for plane, at in placement.files.items()}
            channels = [Channel(names.get(plane)) for plane in range(placement.planes)]
        missing = placement.missing()
        first_file, last_file = (self._paths[placement.files[plane]] for plane in (0, placement.planes - 1))
        description = (
            f"sequence of {len(self._paths)} {format_name} files along {axis} "
            f"(first {first_file}, last {last_file}"
            + (f"; missing indices {missing}" if missing else "")
            + f"); first file: {first.description}"
        )
        return SourceInfo(
            axes="".join(a for a in CANONICAL_AXES if a in first.axes + axis),
            dtype=first.dtype,
            levels=[
                Level(_insert(level.shape, at, placement.planes), _insert(level.storage_unit, at, 1))
                for level in first.levels
            ],
            physical_sizes=dict(first.physical_sizes),
            channels=channels,
            description=description,
            fill_value=first.fill_value,
        )

    def _mismatch(self, source: ImageSource) -> str | None:
        """How a file differs from the first one, in words (None when it does not)."""
        info, first = source.info, self._first_info
        if info.dtype != first.dtype:
            return f"has dtype {info.dtype}, the first file {first.dtype}"
        if info.axes != first.axes:
            return f"has axes {info.axes}, the first file {first.axes}"
        shapes = [level.shape for level in info.levels[: len(first.levels)]]
        expected = [level.shape for level in first.levels]
        if shapes[:1] != expected[:1]:
            return f"has shape {shapes[0]}, the first file {expected[0]}"
        if shapes != expected:
            return f"has stored levels of shapes {shapes}, the first file {expected}"
        return None

    def files(self) -> tuple[str, ...]:
        return self._paths

    def watched_files(self) -> tuple[str, ...]:
        # Thousands of files: each read checks the files it used (Members.read), not all of them.
        return ()

    def _planes(self, region: tuple[slice, ...]) -> tuple[slice, tuple[slice, ...]]:
        if len(region) != len(self.info.axes):
            raise ValueError(f"region has {len(region)} axes, the image has {len(self.info.axes)}")
        return region[self._axis], region[: self._axis] + region[self._axis + 1 :]

    def read_region(self, level: int, region: tuple[slice, ...]) -> np.ndarray:
        planes, within = self._planes(region)
        out = np.empty(tuple(part.stop - part.start for part in region), dtype=self.info.dtype)
        for offset, plane in enumerate(range(planes.start, planes.stop)):
            target = out[(slice(None),) * self._axis + (offset,)]
            position = self._placement.files.get(plane)
            if position is None:
                self._members.check_open()
                target[...] = self.info.fill
            else:
                target[...] = self._members.read(position, lambda file: file.read_region(level, within))
        return out

    def native_blocks(self, level: int) -> NativeBlocks | None:
        native = self._native[level]
        if native is None:
            return None
        return NativeBlocks(_insert(native.block_shape, self._axis, 1), native.codec)

    def read_native_block(self, level: int, index: tuple[int, ...]) -> bytes | None:
        """The stored block of the file at the index's plane; None (the caller decodes the chunk instead) for
        a plane no file has, or a file whose blocks are stored otherwise than the first file's."""
        native = self._native[level] if 0 <= level < len(self._native) else None
        if native is None or len(index) != len(self.info.axes):
            raise ValueError(f"level {level} has no native blocks: {self.path}")
        plane = index[self._axis]
        if not 0 <= plane < self._placement.planes:
            raise IndexError(f"plane {plane} is outside the sequence of {self._placement.planes}")
        position = self._placement.files.get(plane)
        if position is None:
            self._members.check_open()
            return None
        within = index[: self._axis] + index[self._axis + 1 :]
        return self._members.read(position, _stored_block(level, within, native))

    def problems(self) -> list[str]:
        """Open every file now, as its first read would, and say what is wrong with each that fails."""
        found = []
        for position in sorted(set(self._placement.files.values())):
            try:
                self._members.read(position, lambda file: None)
            except SourceError as error:
                found.append(str(error))
        return found

    def open_files(self) -> int:
        """How many files are open now (bounded by MAX_OPEN_FILES)."""
        return self._members.open_count()

    def close(self) -> None:
        self._members.close()


def _stored_block(
    level: int, index: tuple[int, ...], expected: NativeBlocks
) -> Callable[[ImageSource], bytes | None]:
    def read(file: ImageSource) -> bytes | None:
        if file.native_blocks(level) != expected:
            return None
        return file.read_native_block(level, index)

    return read


def open_sequence(
    location: Location, options: Mapping[str, Any], placement: Placement, block_cache_bytes: int
) -> SequenceSource:
    """Open a file sequence with the reader that claims its first file."""
    from zarrfs.sources.registry import REGISTRY

    first_path = location.paths[placement.files[min(placement.files)]]
    reader = REGISTRY.find(Location.of(first_path))
    axis = options.get("sequence_axis", "z")
    return SequenceSource(location.named, location.paths, placement, axis, reader, block_cache_bytes)
