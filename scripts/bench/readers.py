"""The tools compared: each reads a whole level into memory the way its users would, in this process."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from .images import Image


def fingerprint(array: np.ndarray) -> int:
    """A cheap checksum of a strided sample, to check that every reader returned the same pixels."""
    index = tuple(slice(None, None, 97) if n >= 1000 else slice(None) for n in array.shape)
    return int(np.asarray(array[index], dtype=np.uint64).sum())


def canonical(image: Image, array: np.ndarray) -> np.ndarray:
    """tifffile returns RGB as (y, x, samples); zarrfs and the converted copy serve (c, y, x)."""
    if image.axes == "cyx" and array.shape[-1] == 3:
        return np.moveaxis(array, -1, 0)
    if image.format == "nifti":  # nibabel gives (x, y, z); zarrfs serves (z, y, x)
        return array.T
    return array


def ts_read(path: str, driver: str = "zarr3") -> np.ndarray:
    return _ts_read({"driver": driver, "kvstore": {"driver": "file", "path": path}})


def ts_read_http(base_url: str) -> np.ndarray:
    """A Zarr v3 array over HTTP (``base_url`` ends with the array's path and a slash)."""
    return _ts_read({"driver": "zarr3", "kvstore": {"driver": "http", "base_url": base_url}})


def _ts_read(spec: dict[str, Any]) -> np.ndarray:
    import tensorstore as ts

    return np.asarray(ts.open(spec, read=True).result().read().result())


def reference_read(image: Image) -> np.ndarray:
    """The whole image by the format's own reader, as its users read it (image.reference)."""
    if image.reference == "h5py":
        import h5py

        from .formats import HDF5_DATASET

        with h5py.File(image.path, "r", locking=False) as file:
            return np.asarray(file[HDF5_DATASET][...])
    if image.reference == "nibabel":
        import nibabel as nib

        return np.asarray(nib.load(str(image.path), mmap=False).dataobj[...])
    if image.reference == "tensorstore_store":
        return ts_read(str(image.path), "zarr3" if image.format == "zarr" else "n5")
    if image.reference == "tifffile_sequence":
        return np.asarray(tifffile.imread(image.files()))
    raise ValueError(f"no reader {image.reference} for image {image.key}")


def zarr_read(path: str) -> np.ndarray:
    import zarr

    return np.asarray(zarr.open_array(path, mode="r", zarr_format=3)[...])


def dask_read(path: str) -> np.ndarray:
    import dask.array as da
    import zarr

    array = zarr.open_array(path, mode="r", zarr_format=3)
    return np.asarray(da.from_zarr(array).compute(scheduler="threads"))


def tifffile_read(path: Path, maxworkers: int | None = None) -> np.ndarray:
    return np.asarray(tifffile.imread(path, maxworkers=maxworkers))


def aszarr_read(path: Path) -> np.ndarray:
    import zarr

    store = tifffile.imread(path, aszarr=True, level=0)
    try:
        return np.asarray(zarr.open_array(store, mode="r")[...])
    finally:
        store.close()


def store_read(path: Path) -> np.ndarray:
    import zarr

    from zarrfs.frontends.store import open_store  # zarrfs.open_store

    store = open_store(path, ngff="0.5")  # read as Zarr v3 below
    try:
        array = zarr.open_group(store, mode="r", zarr_format=3)["0"]
        assert isinstance(array, zarr.Array)
        return np.asarray(array[...])
    finally:
        store.close()


def core_read_all(path: Path, options: dict[str, Any] | None = None) -> tuple[int, int]:
    """Every level-0 chunk file made by zarrfs's core in-process, 2 threads, no FUSE and no client."""
    from zarrfs.core import open_dataset
    from zarrfs.core.options import serve_options

    # Zarr v3 keys below: the v3 layout (NGFF 0.5), whatever zarrfs serves by default.
    dataset = open_dataset(path, serve_options(**{"ngff": "0.5", **(options or {})}))
    try:
        array = dataset.layouts[-1].arrays[0]
        keys = ["0/c/" + "/".join(map(str, index)) for index in np.ndindex(*array.grid)]
        with ThreadPoolExecutor(2) as pool:
            total = sum(pool.map(lambda key: len(dataset.tree.read_file(key)), keys, chunksize=16))
        return total, len(keys)
    finally:
        dataset.close()


def served_chunks(path: Path) -> tuple[int, ...]:
    """The chunk shape zarrfs serves level 0 with by default (the converted copy uses the same)."""
    from zarrfs.core import open_dataset

    dataset = open_dataset(path)
    try:
        return tuple(dataset.levels[0].chunks)
    finally:
        dataset.close()


def level_1_is_computed(path: Path) -> bool:
    """Whether zarrfs makes level 1 from level 0 (else the file stores it)."""
    from zarrfs.core import open_dataset
    from zarrfs.core.pyramid import ComputedLevel

    dataset = open_dataset(path)
    try:
        return len(dataset.levels) > 1 and isinstance(dataset.levels[1], ComputedLevel)
    finally:
        dataset.close()


def convert_with_ome_zarr(image: Image, out: Path, chunks: tuple[int, ...]) -> None:
    """What a user runs first without zarrfs: level 0 through dask, ome-zarr-py writes the whole pyramid."""
    import dask.array as da
    import zarr
    from ome_zarr.writer import write_image

    store = tifffile.imread(image.path, aszarr=True, level=0)
    try:
        array = da.from_zarr(zarr.open(store, mode="r"))
        if image.axes == "cyx":
            array = array.transpose(2, 0, 1)
        array = array.rechunk(chunks)
        group = zarr.open_group(str(out), mode="w")
        write_image(array, group, axes=image.axes)
    finally:
        store.close()


def write_raw_copy(data: np.ndarray, path: Path, chunks: tuple[int, ...]) -> None:
    """``data`` as an uncompressed local Zarr v3 array (the client's own ceiling, without FUSE)."""
    import tensorstore as ts

    spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(path)}}
    target = ts.open(
        spec,
        create=True,
        dtype=ts.uint16,
        shape=data.shape,
        chunk_layout=ts.ChunkLayout(chunk_shape=list(chunks)),
        codec=ts.CodecSpec({"driver": "zarr3", "codecs": [{"name": "bytes"}]}),
    ).result()
    target.write(data).result()
