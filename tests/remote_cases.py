"""The files the remote-source tests serve, written with tifffile, h5py, nibabel and zarr, and how to read
each back locally with those libraries (the oracles)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import tifffile

RNG_SEED = 15


def _noise(shape: tuple[int, ...], dtype: type = np.uint16) -> np.ndarray:
    rng = np.random.default_rng(RNG_SEED)
    return rng.integers(0, 4000, shape, dtype=dtype)


def write_tiled(path: Path) -> np.ndarray:
    data = _noise((3, 1000, 1200))
    tifffile.imwrite(
        path, data, tile=(256, 256), compression="zlib", photometric="rgb", planarconfig="separate"
    )
    return data


def write_striped(path: Path) -> np.ndarray:
    data = _noise((1000, 1200))
    tifffile.imwrite(path, data, rowsperstrip=64)
    return data


def write_ome_pyramid(path: Path) -> np.ndarray:
    """An OME-TIFF with two channels and a pyramid in SubIFDs (as bioformats writes them)."""
    data = _noise((2, 2048, 2048))
    with tifffile.TiffWriter(path, bigtiff=True, ome=True) as tiff:
        options = {"tile": (256, 256), "compression": "zlib", "photometric": "minisblack"}
        tiff.write(data, subifds=2, metadata={"axes": "CYX"}, **options)
        for factor in (2, 4):
            tiff.write(data[:, ::factor, ::factor], subfiletype=1, **options)
    return data


def write_cog(path: Path) -> np.ndarray:
    """A COG's layout: tiled, overviews as the following reduced-resolution pages."""
    data = _noise((4096, 4096))
    with tifffile.TiffWriter(path) as tiff:
        options = {"tile": (512, 512), "compression": "zlib", "photometric": "minisblack"}
        tiff.write(data, **options)
        for factor in (2, 4, 8):
            tiff.write(data[::factor, ::factor], subfiletype=1, **options)
    return data


def write_hdf5(path: Path) -> np.ndarray:
    data = _noise((20, 300, 400))
    with h5py.File(path, "w") as h5:
        dataset = h5.create_dataset("volume", data=data, chunks=(4, 64, 64), compression="gzip")
        dataset.attrs["axes"] = "zyx"
    return data


def write_nifti(path: Path) -> np.ndarray:
    """``.nii`` or ``.nii.gz`` by the name; returns the voxels in nibabel's (x, y, z) order."""
    data = _noise((64, 80, 40), np.int16)
    nib.save(nib.Nifti1Image(data, np.diag([0.5, 0.5, 2.0, 1.0])), path)
    return data


WRITERS: dict[str, Callable[[Path], np.ndarray]] = {
    "tiled.tif": write_tiled,
    "striped.tif": write_striped,
    "pyramid.ome.tif": write_ome_pyramid,
    "cog.tif": write_cog,
    "volume.h5": write_hdf5,
    "volume.nii": write_nifti,
    "volume.nii.gz": write_nifti,
}


def write_zarr_stores(directory: Path) -> dict[str, tuple[Path, np.ndarray]]:
    """An OME-Zarr (NGFF 0.4, Zarr v2) image, a Zarr v3 array and an N5 dataset (zarr_cases, as the local
    Zarr tests write them): the store's directory and level 0 by zarr-python or tensorstore, by name."""
    from zarr_cases import CASES

    stores = {}
    for name in ("ome_zarr_04", "v3_zstd_named", "n5_dataset"):
        (directory / name).mkdir(parents=True)
        made = CASES[name](directory / name)
        stores[name] = (made.path, made.levels[0])
    return stores


def oracle(path: Path) -> np.ndarray:
    """Level 0 of the file as its own library reads it, in the order zarrfs serves (canonical tczyx)."""
    name = path.name
    if name.endswith(".tif"):
        return np.asarray(tifffile.imread(path))
    if name.endswith(".h5"):
        with h5py.File(path, "r") as h5:
            return np.asarray(h5["volume"][...])
    image = nib.load(path)
    return np.asarray(image.dataobj).transpose(2, 1, 0)  # x, y, z -> z, y, x


def write_all(directory: Path) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, write in WRITERS.items():
        write(directory / name)
        paths[name] = directory / name
    return paths
