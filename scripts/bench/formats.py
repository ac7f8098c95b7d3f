"""Writers of the images in the other formats zarrfs reads (issue 12), each by the field's own writer: h5py,
nibabel, tensorstore (Zarr v3 and N5) and tifffile (file sequences). Pixels come from the same fields as the
TIFF images."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from .synth import TILE, Field, sparse_tiles, stack_planes

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


# The repository tree (issue 14): small images, mostly TIFF, one in every NIFTI_EVERY a NIfTI volume, and a
# note per directory that no reader opens (not shown by the mount).
REPO_SIDE = 64
NIFTI_EVERY = 50


def repository_name(directory: int, index: int) -> str:
    """The file of image ``index`` (unique across the tree) in directory ``directory``, relative."""
    suffix = ".nii.gz" if index % NIFTI_EVERY == NIFTI_EVERY - 1 else ".tif"
    return f"d{directory:03d}/img_{index:05d}{suffix}"


def repository_layout(images: int, directories: int, listed: int) -> list[str]:
    """Every image's relative path: ``listed`` in the first directory, the rest spread evenly over the
    others (the first is the one whose listing is timed)."""
    rest, others = images - listed, directories - 1
    counts = [listed] + [rest // others + (d < rest % others) for d in range(others)]
    names, index = [], 0
    for directory, count in enumerate(counts):
        for _ in range(count):
            names.append(repository_name(directory, index))
            index += 1
    return names


def write_small_image(path: Path, seed: int) -> None:
    """A REPO_SIDE x REPO_SIDE uint16 TIFF, or a 4-plane NIfTI volume (by the name), of noise."""
    data = np.random.default_rng(seed).integers(0, 4096, (4, REPO_SIDE, REPO_SIDE), dtype=np.uint16)
    if path.name.endswith(".nii.gz"):
        import nibabel as nib

        nib.save(nib.Nifti1Image(data.T, np.eye(4)), str(path))
    else:
        tifffile.imwrite(path, data[0], metadata=None)


def write_repository(root: Path, images: int, directories: int, listed: int) -> None:
    for index, name in enumerate(repository_layout(images, directories, listed)):
        path = root / name
        if not path.parent.exists():
            path.parent.mkdir(parents=True)
            (path.parent / "README.txt").write_text("acquisition notes: no image reader opens this\n")
        write_small_image(path, index)


def write_cog(path: Path, field_: Field, side: int, block: int) -> None:
    """A sparse tiled deflate BigTIFF with reduced levels in SubIFDs, halved until one tile covers a level
    (as a cloud-optimized GeoTIFF stores overviews): only the central ``block`` tiles of each level (and
    its first tile) are written."""
    levels = max(1, math.ceil(math.log2(side / TILE)))
    options: dict[str, Any] = {
        "tile": (TILE, TILE),
        "dtype": "uint16",
        "compression": "zlib",
        "compressionargs": {"level": 1},
        "predictor": False,
        "metadata": None,
        "maxworkers": 2,
    }
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        tif.write(sparse_tiles(field_, side, block), shape=(side, side), subifds=levels - 1, **options)
        for level in range(1, levels):
            reduced = math.ceil(side / 2**level)
            tiles = math.ceil(reduced / TILE)
            tif.write(
                sparse_tiles(field_, reduced, max(1, min(tiles, block >> level))),
                shape=(reduced, reduced),
                subfiletype=1,
                **options,
            )


def write_tiled_stack(path: Path, field_: Field, shape: tuple[int, int, int]) -> None:
    """A z-stack OME-TIFF of deflate tiles 256x256 (level 1), as microscopes write compressed stacks."""
    tiles = (
        plane[y : y + TILE, x : x + TILE]
        for plane in stack_planes(field_, shape)
        for y in range(0, shape[1], TILE)
        for x in range(0, shape[2], TILE)
    )
    tifffile.imwrite(
        path,
        tiles,
        shape=shape,
        dtype="uint16",
        tile=(TILE, TILE),
        compression="zlib",
        compressionargs={"level": 1},
        photometric="minisblack",
        bigtiff=True,
        maxworkers=2,
        metadata={"axes": "ZYX", "PhysicalSizeX": 0.325, "PhysicalSizeY": 0.325, "PhysicalSizeZ": 1.0},
    )
