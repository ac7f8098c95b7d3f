"""An HDF5 file as an image source: h5py reads the structure once, at open; pixels are then read with
``os.pread`` on our own descriptor and decoded in the calling thread (see stored.py)."""

from __future__ import annotations

import contextlib
import os
import re

import h5py
import numpy as np

from zarrfs.errors import SourceError, one_line
from zarrfs.sources.base import ImageSource, Level, NativeBlocks, SourceInfo
from zarrfs.sources.hdf5.bdv import bdv_plan, is_bdv
from zarrfs.sources.hdf5.imaris import imaris_plan, is_imaris
from zarrfs.sources.hdf5.layouts import Opener, is_pli, named_dataset, only_dataset, plain_plan, pli_plan
from zarrfs.sources.hdf5.plan import ImagePlan, LevelPlan
from zarrfs.sources.hdf5.stored import decoded_cache, open_data
from zarrfs.sources.pixelfile import PixelFile, SourceFile

# Decoded HDF5 chunks that more than one served chunk needs (HDF5 chunks larger than the served ones).
DEFAULT_CHUNK_CACHE_BYTES = 256 * 2**20
_TRUNCATED = re.compile(r"truncated file: eof = (\d+).*stored_eof = (\d+)")


def open_hdf5(path: str, file: SourceFile | None = None) -> h5py.File:
    """The file opened read-only without HDF5's file locking (sources on parallel file systems, and files
    other programs hold open), with hdf5plugin's filters registered; or a one-line SourceError. ``file``:
    where the bytes are, when not in the local file ``path`` (h5py reads its structure through a file object
    whose small reads come from the remote file's read-ahead blocks)."""
    with contextlib.suppress(ImportError):
        import hdf5plugin  # noqa: F401  (registers blosc, lz4, zstd, bitshuffle, ... with HDF5)
    try:
        if file is not None:
            return h5py.File(file.stream(), "r")
        return h5py.File(path, "r", locking=False)
    except OSError as error:
        message = one_line(error)
        truncated = _TRUNCATED.search(message)
        if truncated:
            size, expected = truncated.groups()
            raise SourceError(
                f"file is truncated: it has {size} bytes but its HDF5 superblock says {expected}: {path}"
            ) from None
        raise SourceError(f"not a valid HDF5 file ({message}): {path}") from None


def recognise(
    file: h5py.File, dataset: str | None, axes: str | None, open_data: Opener, path: str
) -> ImagePlan:
    """What the file holds: the dataset the user named, else the layout its structure shows."""
    if dataset is not None:
        return plain_plan(named_dataset(file, dataset, path), axes, open_data, path)
    for is_layout, make, name in ((is_imaris, imaris_plan, "Imaris"), (is_bdv, bdv_plan, "BigDataViewer")):
        if is_layout(file):
            if axes is not None:
                raise SourceError(
                    f"--axes does not apply to {name} files (their axes are t, c, z, y, x); to serve one "
                    f"dataset with other axes, name it with --dataset: {path}"
                )
            return make(file, open_data, path)
    if is_pli(file):
        return pli_plan(file, axes, open_data, path)
    return plain_plan(only_dataset(file, path), axes, open_data, path)


class Hdf5Source(ImageSource):
    """One image of an HDF5 file. Opening reads metadata only; ``read_region`` is thread-safe and takes no
    lock except the small cache of decoded chunks shared between regions."""

    def __init__(
        self,
        path: str,
        dataset: str | None = None,
        axes: str | None = None,
        *,
        chunk_cache_bytes: int = DEFAULT_CHUNK_CACHE_BYTES,
        file: SourceFile | None = None,
    ) -> None:
        """``file``: where the bytes are, when not in the local file ``path`` (an object at a URL)."""
        self.path = path
        self._h5: h5py.File | None = None
        self._pixels: SourceFile | None = None
        self._levels: list[LevelPlan] = []
        self._native: list[NativeBlocks | None] = []
        try:
            self._h5 = open_hdf5(path, file)
            self._pixels = pixels = PixelFile(path) if file is None else file
            cache = decoded_cache(chunk_cache_bytes)

            def opener(item: h5py.Dataset, shape: tuple[int, ...] | None, dtype: np.dtype | None):  # type: ignore[no-untyped-def]
                return open_data(item, pixels, cache, shape, dtype)

            try:
                plan = recognise(self._h5, dataset, axes, opener, path)
            except SourceError:
                raise
            except Exception as error:  # h5py on a damaged structure
                raise SourceError(
                    f"cannot read the HDF5 file's structure ({one_line(error)}): {path}"
                ) from None
        except BaseException:
            self.close()
            raise
        self._levels = plan.levels
        self._native = [level.native_blocks() for level in plan.levels]
        self._paths = (os.path.abspath(path) if file is None else path, *plan.companions)
        count = len(plan.levels)
        self.info = SourceInfo(
            axes=plan.axes,
            dtype=plan.dtype,
            levels=[Level(level.shape, level.storage_unit) for level in plan.levels],
            physical_sizes=plan.physical_sizes,
            channels=plan.channels,
            description=f"{plan.kind}, {plan.details}, {plan.dtype}{plan.dtype_note}"
            + (f", {count} levels" if count > 1 else ""),
            fill_value=np.asarray(plan.levels[0].fill).item(),
        )

    def files(self) -> tuple[str, ...]:
        return self._paths

    def _level(self, level: int) -> LevelPlan:
        if self._pixels is None:
            raise SourceError(f"source is closed: {self.path}")
        if not 0 <= level < len(self._levels):
            raise IndexError(f"level {level} does not exist: the image has {len(self._levels)} levels")
        return self._levels[level]

    def read_region(self, level: int, region: tuple[slice, ...]) -> np.ndarray:
        plan = self._level(level)
        if len(region) != len(plan.shape):
            raise ValueError(f"region has {len(region)} axes, the image has {len(plan.shape)}")
        return plan.read(region, self.info.dtype)

    def native_blocks(self, level: int) -> NativeBlocks | None:
        self._level(level)
        return self._native[level]

    def read_native_block(self, level: int, index: tuple[int, ...]) -> bytes | None:
        plan = self._level(level)
        if self._native[level] is None:
            raise ValueError(f"level {level} has no native blocks: {self.path}")
        return plan.read_native(index)

    def close(self) -> None:
        if self._pixels is not None:
            self._pixels.close()
            self._pixels = None
        self._levels = []
        self._native = []
        if self._h5 is not None:
            with contextlib.suppress(Exception):
                self._h5.close()
            self._h5 = None
