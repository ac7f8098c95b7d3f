"""Zarr and N5 stores written by the field's own tools (zarr-python, ome-zarr-py, tensorstore's n5 driver),
each with its pixels in canonical axis order as those tools read them back (the oracle)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import tensorstore as ts
import zarr


@dataclass
class ZarrCase:
    path: Path
    levels: list[np.ndarray]  # canonical order, as zarr-python / tensorstore read the stored levels
    axes: str
    options: dict[str, Any] = field(default_factory=dict)  # reader options (dataset, axes)
    fill: float = 0


def _pixels(shape: tuple[int, ...], dtype: str, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.normal(100, 20, shape).astype(dtype)
    return rng.integers(0, 4000, shape).astype(dtype)


def _read(path: Path, zarr_format: int) -> np.ndarray:
    return zarr.open_array(path, mode="r", zarr_format=zarr_format)[...]


def v2_blosc(directory: Path) -> ZarrCase:
    path = directory / "v2_blosc.zarr"
    data = _pixels((3, 70, 90), "uint16")
    array = zarr.create_array(
        path, shape=data.shape, chunks=(1, 32, 32), dtype="uint16", zarr_format=2,
        compressors=numcodecs.Blosc("lz4", 5, numcodecs.Blosc.SHUFFLE),
    )  # fmt: skip
    array[...] = data
    return ZarrCase(path, [_read(path, 2)], "zyx")


def v2_zlib_xarray(directory: Path) -> ZarrCase:
    """xarray's dimension names, x first: the canonical view is the transpose."""
    path = directory / "v2_zlib_xarray.zarr"
    data = _pixels((90, 70), "int16")
    array = zarr.create_array(
        path, shape=data.shape, chunks=(40, 30), dtype="int16", zarr_format=2,
        compressors=numcodecs.Zlib(level=3), attributes={"_ARRAY_DIMENSIONS": ["x", "y"]},
    )  # fmt: skip
    array[...] = data
    return ZarrCase(path, [_read(path, 2).T], "yx")


def v2_sparse_fill(directory: Path) -> ZarrCase:
    """Raw chunks, "." separators, a fill value, and chunks never written (they read as the fill value)."""
    path = directory / "v2_sparse.zarr"
    array = zarr.create_array(
        path, shape=(2, 60, 64), chunks=(1, 16, 16), dtype="float32", zarr_format=2, compressors=None,
        fill_value=-1.5,
    )  # fmt: skip
    array[0, 5:20, 7:30] = _pixels((15, 23), "float32")
    return ZarrCase(path, [_read(path, 2)], "zyx", fill=-1.5)


def v3_zstd_named(directory: Path) -> ZarrCase:
    path = directory / "v3_zstd.zarr"
    data = _pixels((2, 50, 80), "float32")
    array = zarr.create_array(
        path, shape=data.shape, chunks=(1, 25, 40), dtype="float32", dimension_names=["c", "y", "x"]
    )
    array[...] = data
    return ZarrCase(path, [_read(path, 3)], "cyx")


def v3_gzip_4d(directory: Path) -> ZarrCase:
    path = directory / "v3_gzip.zarr"
    data = _pixels((2, 3, 40, 50), "uint8")
    array = zarr.create_array(
        path,
        shape=data.shape,
        chunks=(1, 2, 16, 16),
        dtype="uint8",
        compressors=zarr.codecs.GzipCodec(level=4),
    )
    array[...] = data
    return ZarrCase(path, [_read(path, 3)], "czyx")


def v3_blosc(directory: Path) -> ZarrCase:
    path = directory / "v3_blosc.zarr"
    data = _pixels((3, 64, 96), "uint16")
    array = zarr.create_array(
        path, shape=data.shape, chunks=(1, 32, 32), dtype="uint16", dimension_names=["z", "y", "x"],
        compressors=zarr.codecs.BloscCodec(cname="lz4", clevel=5, shuffle="shuffle"),
    )  # fmt: skip
    array[...] = data
    return ZarrCase(path, [_read(path, 3)], "zyx")


def v3_sharded_transposed(directory: Path) -> ZarrCase:
    """Sharded, with its dimensions named in an order other than the canonical one."""
    path = directory / "v3_sharded.zarr"
    data = _pixels((70, 3, 90), "uint16")
    array = zarr.create_array(
        path, shape=data.shape, chunks=(16, 1, 32), shards=(32, 3, 64), dtype="uint16",
        dimension_names=["y", "z", "x"], fill_value=9,
    )  # fmt: skip
    array[:60] = data[:60]
    return ZarrCase(path, [_read(path, 3).transpose(1, 0, 2)], "zyx", fill=9)


def group_of_one(directory: Path) -> ZarrCase:
    """A group with one image array (and a 1-D array beside it, which is not an image)."""
    path = directory / "group.zarr"
    group = zarr.open_group(path, mode="w")
    group.create_array("coords", shape=(5,), dtype="float64")[...] = np.arange(5.0)
    raw = group.create_group("volumes").create_array(
        "raw", shape=(4, 40, 30), chunks=(2, 20, 15), dtype="uint16"
    )
    raw[...] = _pixels((4, 40, 30), "uint16")
    return ZarrCase(path, [zarr.open_array(path / "volumes" / "raw", mode="r")[...]], "zyx")


def group_chosen(directory: Path) -> ZarrCase:
    """A group with several arrays: --dataset picks one, --axes names its dimensions."""
    path = directory / "several.zarr"
    group = zarr.open_group(path, mode="w", zarr_format=2)
    for name, seed in (("a", 1), ("b", 2)):
        group.create_array(name, shape=(30, 3, 40), chunks=(10, 3, 20), dtype="uint8")[...] = _pixels(
            (30, 3, 40), "uint8", seed
        )
    reference = zarr.open_array(path / "b", mode="r", zarr_format=2)[...].transpose(1, 0, 2)
    return ZarrCase(path, [reference], "cyx", options={"dataset": "/b", "axes": "ycx"})


def _ome(directory: Path, name: str, version: str, storage: dict[str, Any] | None = None) -> ZarrCase:
    from ome_zarr.format import FormatV04, FormatV05
    from ome_zarr.writer import write_image

    path = directory / name
    fmt = FormatV04() if version == "0.4" else FormatV05()
    data = _pixels((2, 5, 96, 128), "uint16")
    group = zarr.open_group(path, mode="w", zarr_format=fmt.zarr_format)
    write_image(
        data, group, scale_factors=(2, 4), fmt=fmt, axes="czyx", storage_options=storage,
        scale={"z": 2.0, "y": 0.5, "x": 0.5}, axes_units=dict.fromkeys("zyx", "micrometer"),
    )  # fmt: skip
    group = zarr.open_group(path, mode="a", zarr_format=fmt.zarr_format)
    window = {"start": 0, "end": 4000, "min": 0, "max": 4000}
    omero = {
        "channels": [
            {"label": "DAPI", "color": "0000FF", "window": window},
            {"label": "GFP", "color": "00FF00", "window": window},
        ]
    }
    if version == "0.4":
        group.attrs["omero"] = omero
    else:
        group.attrs["ome"] = {**group.attrs["ome"], "omero": omero}
    attributes = group.attrs.asdict()
    multiscales = (attributes["ome"] if version == "0.5" else attributes)["multiscales"][0]
    paths = [dataset["path"] for dataset in multiscales["datasets"]]
    levels = [zarr.open_array(path / level, mode="r", zarr_format=fmt.zarr_format)[...] for level in paths]
    return ZarrCase(path, levels, "czyx")


def ome_zarr_04(directory: Path) -> ZarrCase:
    return _ome(directory, "image04.ome.zarr", "0.4", {"chunks": (1, 1, 64, 64)})


def ome_zarr_05_sharded(directory: Path) -> ZarrCase:
    return _ome(directory, "image05.ome.zarr", "0.5", {"chunks": (1, 1, 32, 32), "shards": (1, 1, 64, 64)})


def ome_zarr_05_multiscale(directory: Path) -> ZarrCase:
    """ome-zarr-py's write_multiscale: a pyramid the caller made, NGFF 0.5, unsharded."""
    from ome_zarr.format import FormatV05
    from ome_zarr.writer import write_multiscale

    path = directory / "multiscale05.ome.zarr"
    full = _pixels((6, 64, 80), "float32")
    pyramid = [full, full[::2, ::2, ::2].copy()]
    group = zarr.open_group(path, mode="w", zarr_format=3)
    write_multiscale(pyramid, group, fmt=FormatV05(), axes="zyx", storage_options={"chunks": (2, 32, 32)})
    multiscales = zarr.open_group(path, mode="r").attrs["ome"]["multiscales"][0]
    levels = [zarr.open_array(path / dataset["path"], mode="r")[...] for dataset in multiscales["datasets"]]
    return ZarrCase(path, levels, "zyx")


def _n5_write(path: Path, data_xfirst: np.ndarray, block: list[int], attributes: dict[str, Any]) -> None:
    spec = {
        "driver": "n5", "kvstore": {"driver": "file", "path": str(path)},
        "metadata": {"dimensions": list(data_xfirst.shape), "blockSize": block,
                     "dataType": str(data_xfirst.dtype), "compression": {"type": "gzip"}},
        "create": True, "delete_existing": True,
    }  # fmt: skip
    store = ts.open(spec).result()
    store[...] = data_xfirst
    if attributes:
        document = path / "attributes.json"
        import json

        document.write_text(json.dumps({**json.loads(document.read_text()), **attributes}))


def _n5_read(path: Path) -> np.ndarray:
    """As tensorstore's n5 driver reads it (x first), transposed to the canonical view (z, y, x)."""
    array = ts.open({"driver": "n5", "kvstore": {"driver": "file", "path": str(path)}}).result()
    return np.asarray(array.read().result()).T


def n5_dataset(directory: Path) -> ZarrCase:
    path = directory / "volume.n5"
    _n5_write(path, _pixels((90, 70, 3), "uint16"), [32, 32, 1], {})
    return ZarrCase(path, [_n5_read(path)], "zyx")


def n5_multiscale(directory: Path) -> ZarrCase:
    import json

    path = directory / "pyramid.n5"
    path.mkdir()
    (path / "attributes.json").write_text(
        json.dumps({"n5": "2.5.1", "downsamplingFactors": [[1, 1, 1], [2, 2, 1]], "pixelResolution":
                    {"dimensions": [0.25, 0.25, 1.5], "unit": "um"}})
    )  # fmt: skip
    full = _pixels((80, 60, 4), "uint8")
    _n5_write(path / "s0", full, [32, 32, 2], {"downsamplingFactors": [1, 1, 1]})
    _n5_write(path / "s1", full[::2, ::2], [32, 32, 2], {"downsamplingFactors": [2, 2, 1]})
    return ZarrCase(path, [_n5_read(path / "s0"), _n5_read(path / "s1")], "zyx")


CASES: dict[str, Callable[[Path], ZarrCase]] = {
    case.__name__: case
    for case in (
        v2_blosc, v2_zlib_xarray, v2_sparse_fill, v3_zstd_named, v3_gzip_4d, v3_blosc, v3_sharded_transposed,
        group_of_one, group_chosen, ome_zarr_04, ome_zarr_05_sharded, ome_zarr_05_multiscale, n5_dataset,
        n5_multiscale,
    )
}  # fmt: skip
