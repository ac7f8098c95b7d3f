"""Generated repositories (directory trees of images in every format) and what each node must read as, by
each format's own reader: tifffile, h5py, nibabel, zarr-python."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import tifffile
import zarr
from nifti_cases import reference as nifti_reference


def _pixels(shape: tuple[int, ...], seed: int, dtype: str = "uint16") -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 60000 if dtype == "uint16" else 250, shape).astype(dtype)


def write_tiff(path: Path, seed: int, shape: tuple[int, ...] = (70, 90)) -> Callable[[], np.ndarray]:
    tifffile.imwrite(path, _pixels(shape, seed), tile=(32, 32), compression="zlib")
    return lambda: tifffile.imread(path)


def write_hdf5(path: Path, seed: int) -> Callable[[], np.ndarray]:
    with h5py.File(path, "w") as handle:
        handle.create_dataset("data", data=_pixels((5, 40, 50), seed, "uint8"), chunks=(1, 20, 25))

    def read() -> np.ndarray:
        with h5py.File(path, "r", locking=False) as handle:  # as zarrfs opens it
            return handle["data"][...]

    return read


def write_nifti(path: Path, seed: int) -> Callable[[], np.ndarray]:
    nib.save(nib.Nifti1Image(_pixels((30, 20, 6), seed).astype(np.int16), np.eye(4)), str(path))
    return lambda: nifti_reference(path)


def write_zarr(path: Path, seed: int) -> Callable[[], np.ndarray]:
    array = zarr.open_array(path, mode="w", shape=(50, 60), chunks=(16, 16), dtype="f4", zarr_format=2)
    array[...] = _pixels((50, 60), seed).astype("f4")
    return lambda: zarr.open_array(path, mode="r")[...]


def write_sequence(directory: Path, seed: int, count: int = 4) -> Callable[[], np.ndarray]:
    directory.mkdir()
    paths = [directory / f"slice_{index}.tif" for index in range(1, count + 1)]
    for index, path in enumerate(paths):
        tifffile.imwrite(path, _pixels((40, 30), seed + index))
    (directory / "zarrfs-sequence.json").write_text(json.dumps({"pattern": "slice_*.tif", "name": "stack"}))
    return lambda: np.stack([tifffile.imread(path) for path in paths])


def mixed_tree(root: Path) -> dict[str, Callable[[], np.ndarray]]:
    """A repository of every format, with a collision (a.tif + a.tiff), nesting, a sequence rule and files
    no reader opens; returns served node path -> its oracle."""
    (root / "sub" / "deeper").mkdir(parents=True)
    expected = {
        "a.ome.zarr": write_tiff(root / "a.tif", 1),
        "a.tiff.ome.zarr": write_tiff(root / "a.tiff", 2),
        "sub/b.ome.zarr": write_hdf5(root / "sub" / "b.h5", 3),
        "sub/deeper/c.ome.zarr": write_nifti(root / "sub" / "deeper" / "c.nii.gz", 4),
        "d.ome.zarr": write_zarr(root / "d.zarr", 5),
        "sections/stack.ome.zarr": write_sequence(root / "sections", 6),
    }
    (root / "notes.txt").write_text("not an image\n")
    return expected


def age(root: Path, seconds: float = 3600) -> None:
    """Make every file under ``root`` look ``seconds`` old (mtime; the ctime stays now)."""
    then = time.time() - seconds
    for directory, names, files in os.walk(root):
        for name in [*names, *files]:
            os.utime(os.path.join(directory, name), (then, then), follow_symlinks=False)
