"""HDF5 sources through a real FUSE mount: zarr-python and tensorstore read what h5py reads, ome-zarr-models
validates both layouts, and stored chunks pass through byte for byte where a Zarr codec reads them."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import tensorstore
import zarr
from hdf5_cases import CASES, Hdf5Case
from mounting import mounted


def _ts_read(path: Path, driver: str) -> np.ndarray:
    spec = {"driver": driver, "kvstore": {"driver": "file", "path": str(path)}}
    return tensorstore.open(spec).result().read().result()


def _validate(mnt: Path) -> None:
    from ome_zarr_models.v04.image import Image as ImageV04
    from ome_zarr_models.v05.image import Image as ImageV05

    ImageV04.from_zarr(zarr.open_group(mnt, mode="r", zarr_format=2))
    ImageV05.from_zarr(zarr.open_group(mnt, mode="r", zarr_format=3))


def _options(case: Hdf5Case) -> list[str]:
    options = []
    if case.dataset is not None:
        options += ["--dataset", case.dataset]
    if case.axes is not None:
        options += ["--axes", case.axes]
    return options


@pytest.mark.parametrize("name", sorted(CASES))
def test_zarr_and_tensorstore_read_what_h5py_reads(name: str, tmp_path: Path) -> None:
    case = CASES[name](tmp_path)
    with mounted(case.path, tmp_path / "mnt", "--ngff", "all", *_options(case)) as mnt:
        _validate(mnt)
        for level, expected in enumerate(case.levels):
            for zarr_format, driver in ((2, "zarr"), (3, "zarr3")):
                group = zarr.open_group(mnt, mode="r", zarr_format=zarr_format)
                np.testing.assert_array_equal(
                    group[str(level)][...], expected, err_msg=f"zarr v{zarr_format}"
                )
                np.testing.assert_array_equal(_ts_read(mnt / str(level), driver), expected, err_msg=driver)


def _stored_chunk(path: Path, dataset: str, offset: tuple[int, ...]) -> bytes:
    with h5py.File(path, "r", locking=False) as file:
        _, stored = file[dataset].id.read_direct_chunk(offset)
    return bytes(stored)


def test_shuffle_and_deflate_chunks_pass_through_on_zarr_v2(tmp_path: Path) -> None:
    case = CASES["shuffle_deflate_3d_uint16"](tmp_path)
    with mounted(
        case.path, tmp_path / "mnt", "--ngff", "all", "--compressor", "zlib", "--chunks", "8,64,64"
    ) as mnt:
        zarray = json.loads((mnt / "0" / ".zarray").read_text())
        assert zarray["filters"] == [{"id": "shuffle", "elementsize": 2}]
        assert zarray["compressor"]["id"] == "zlib"
        assert (mnt / "0" / "1" / "1" / "0").read_bytes() == _stored_chunk(case.path, "data", (8, 64, 0))
        np.testing.assert_array_equal(
            zarr.open_array(mnt / "0", mode="r", zarr_format=2)[...], case.levels[0]
        )
        # Zarr v3 cannot name shuffle + zlib: decoded and served as gzip there, read by both clients.
        np.testing.assert_array_equal(_ts_read(mnt / "0", "zarr3"), case.levels[0])
        assert json.loads((mnt / "0" / "zarr.json").read_text())["codecs"][1]["name"] == "gzip"


def test_deflate_chunks_pass_through_and_tensorstore_reads_them(tmp_path: Path) -> None:
    case = CASES["deflate_2d_uint8"](tmp_path)
    with mounted(
        case.path, tmp_path / "mnt", "--compressor", "zlib", "--chunks", "64,64", "--ngff", "0.4"
    ) as mnt:
        assert json.loads((mnt / "0" / ".zarray").read_text())["filters"] is None
        for index in ((0, 0), (2, 3), (4, 4)):  # (4, 4) is an edge chunk, stored full size
            chunk = (mnt / "0" / str(index[0]) / str(index[1])).read_bytes()
            assert chunk == _stored_chunk(case.path, "data", (index[0] * 64, index[1] * 64))
        np.testing.assert_array_equal(_ts_read(mnt / "0", "zarr"), case.levels[0])
        np.testing.assert_array_equal(zarr.open_array(mnt / "0", mode="r")[...], case.levels[0])


def test_raw_and_zstd_chunks_pass_through_on_both_layouts(tmp_path: Path) -> None:
    for name, options, index, offset in (
        ("raw_czyx_int32", ("--chunks", "1,2,32,32"), (1, 2, 1, 0), (1, 4, 32, 0)),
        (
            "zstd_tczyx_uint8",
            ("--compressor", "zstd", "--chunks", "1,1,2,16,16"),
            (1, 0, 1, 2, 3),
            (1, 0, 2, 32, 48),
        ),
    ):
        case = CASES[name](tmp_path)
        stored = _stored_chunk(case.path, "data", offset)
        with mounted(case.path, tmp_path / f"mnt-{name}", "--ngff", "all", *options) as mnt:
            key = "/".join(map(str, index))
            assert (mnt / "0" / key).read_bytes() == stored, name
            assert (mnt / "0" / "c" / key).read_bytes() == stored, name
            for driver in ("zarr", "zarr3"):
                np.testing.assert_array_equal(_ts_read(mnt / "0", driver), case.levels[0], err_msg=driver)
            np.testing.assert_array_equal(
                zarr.open_group(mnt, mode="r", zarr_format=3)["0"][...], case.levels[0]
            )


def test_unallocated_chunks_are_the_fill_value_through_the_mount(tmp_path: Path) -> None:
    case = CASES["sparse_fill_value"](tmp_path)
    with mounted(case.path, tmp_path / "mnt", "--ngff", "all", "--chunks", "3,64,64") as mnt:
        assert json.loads((mnt / "0" / ".zarray").read_text())["fill_value"] == 9
        np.testing.assert_array_equal(_ts_read(mnt / "0", "zarr3"), case.levels[0])
        assert (case.levels[0][3:, 0:64, 0:64] == 9).all()
