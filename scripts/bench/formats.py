"""Writers of the images in the other formats zarrfs reads (issue 12), each by the field's own writer: h5py,
nibabel, tensorstore (Zarr v3 and N5) and tifffile (file sequences). Pixels come from the same fields as the
TIFF images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from .synth import TILE, Field, stack_planes

# Chunks of the stored volumes (z, y, x): planes of 512x512, as microscopy writers chunk.
PLANE_CHUNK = 512
# The dataset every HDF5 image stores (the only one, so no --dataset is needed).
HDF5_DATASET = "volume"


def volume(field_: Field, shape: tuple[int, int, int]) -> np.ndarray:
    return np.stack(list(stack_planes(field_, shape)))


def _chunks(shape: tuple[int, ...]) -> tuple[int, int, int]:
    return (1, min(PLANE_CHUNK, shape[1]), min(PLANE_CHUNK, shape[2]))


def write_hdf5(path: Path, field_: Field, shape: tuple[int, int, int]) -> None:
    """One chunked deflate (level 1) dataset, written plane by plane."""
    import h5py

    with h5py.File(path, "w") as file:
        dataset = file.create_dataset(
            HDF5_DATASET, shape, "uint16", chunks=_chunks(shape), compression="gzip", compression_opts=1
        )
        for z, plane in enumerate(stack_planes(field_, shape)):
            dataset[z] = plane


def write_sparse_hdf5(path: Path, field_: Field, shape: tuple[int, int, int]) -> None:
    """A huge chunked deflate dataset of which only a central block of chunks is written: HDF5 allocates no
    other chunk, so the file stays small (fill value everywhere else)."""
    import h5py

    depth, height, width = shape
    z0, y0, x0 = depth // 2 - 2, height // 2 - PLANE_CHUNK, width // 2 - PLANE_CHUNK
    rows = np.arange(y0, y0 + 2 * PLANE_CHUNK, dtype=np.float64)
    columns = np.arange(x0, x0 + 2 * PLANE_CHUNK, dtype=np.float64)
    with h5py.File(path, "w") as file:
        dataset = file.create_dataset(
            HDF5_DATASET, shape, "uint16", chunks=_chunks(shape), compression="gzip", compression_opts=1
        )
        for z in range(z0, z0 + 4):
            block = field_.intensity(rows, columns, key=z, z=float(z))
            dataset[z, y0 : y0 + 2 * PLANE_CHUNK, x0 : x0 + 2 * PLANE_CHUNK] = block


def write_nifti(path: Path, field_: Field, shape: tuple[int, int, int]) -> None:
    """A NIfTI-1 volume (.nii or .nii.gz by the name), x fastest as NIfTI stores it, sizes in mm."""
    import nibabel as nib

    data = volume(field_, shape).T  # (x, y, z), Fortran order: the file holds the planes in z order
    image = nib.Nifti1Image(data, np.diag([0.5, 0.5, 2.0, 1.0]))
    image.header.set_xyzt_units("mm", "sec")
    nib.save(image, str(path))


def write_tensorstore(path: Path, field_: Field, shape: tuple[int, int, int], driver: str) -> None:
    """A Zarr v3 array with zstd (driver ``zarr3``) or an N5 dataset with gzip (``n5``), by tensorstore."""
    import tensorstore as ts

    codec = (
        {"driver": "zarr3", "codecs": [{"name": "bytes"}, {"name": "zstd", "configuration": {"level": 3}}]}
        if driver == "zarr3"
        else {"driver": "n5", "compression": {"type": "gzip", "level": 1}}
    )
    store = ts.open(
        {"driver": driver, "kvstore": {"driver": "file", "path": str(path)}},
        create=True,
        dtype=ts.uint16,
        shape=shape,
        chunk_layout=ts.ChunkLayout(chunk_shape=list(_chunks(shape))),
        codec=ts.CodecSpec(codec),
    ).result()
    for z, plane in enumerate(stack_planes(field_, shape)):
        store[z].write(plane).result()


def sequence_name(index: int) -> str:
    return f"s_{index:05d}.tif"


SEQUENCE_GLOB = "s_*.tif"


def write_sequence(directory: Path, field_: Field, shape: tuple[int, int, int], compressed: bool) -> None:
    """One 2-D TIFF per plane, named so that natural and lexical order agree; deflate tiles when
    ``compressed``, else plain strips (the many-file sequence: small files, mount time is what counts)."""
    directory.mkdir(parents=True)
    options = (
        {"tile": (TILE, TILE), "compression": "zlib", "compressionargs": {"level": 1}} if compressed else {}
    )
    for z, plane in enumerate(stack_planes(field_, shape)):
        tifffile.imwrite(directory / sequence_name(z), plane, metadata=None, **options)
