"""Pyramids and every representation through a real mount: stored and computed levels, NGFF 0.4 and 0.5
side by side, native pass-through and Zarr v3 sharding, read by zarr-python, tensorstore and ome-zarr-py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tensorstore
import tifffile
import zarr
from block_reference import block_reduce
from mounting import mounted, zarrfs


def _write_pyramid(path: Path) -> list[np.ndarray]:
    """An OME-TIFF (c, y, x) with two reduced levels in SubIFDs; returns the stored levels."""
    rng = np.random.default_rng(7)
    base = rng.integers(0, 60000, (2, 600, 520), dtype=np.uint16)
    levels = [base, base[:, ::2, ::2].copy(), base[:, ::4, ::4].copy()]
    options = {"tile": (128, 128), "compression": "zlib"}
    with tifffile.TiffWriter(path, ome=True) as writer:
        metadata = {"axes": "CYX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5}
        writer.write(levels[0], subifds=2, metadata=metadata, **options)
        for level in levels[1:]:
            writer.write(level, subfiletype=1, **options)
    return levels


def _ts_read(path: Path, driver: str) -> np.ndarray:
    spec = {"driver": driver, "kvstore": {"driver": "file", "path": str(path)}}
    return tensorstore.open(spec).result().read().result()


def _validate(mnt: Path, version: str) -> None:
    """Validate one layout with ome-zarr-models (raises on invalid metadata)."""
    from ome_zarr_models.v04.image import Image as ImageV04
    from ome_zarr_models.v05.image import Image as ImageV05

    if version == "0.4":
        ImageV04.from_zarr(zarr.open_group(mnt, mode="r", zarr_format=2))
    else:
        ImageV05.from_zarr(zarr.open_group(mnt, mode="r", zarr_format=3))


def test_stored_pyramid_levels_with_scale_and_translation(tmp_path: Path) -> None:
    source = tmp_path / "pyramid.ome.tif"
    levels = _write_pyramid(source)
    with mounted(source, tmp_path / "mnt", "--levels", "3", "--ngff", "all") as mnt:
        for version, group in (("0.4", zarr.open_group(mnt, mode="r", zarr_format=2)),
                               ("0.5", zarr.open_group(mnt, mode="r", zarr_format=3))):  # fmt: skip
            attrs = (
                group.attrs["multiscales"][0] if version == "0.4" else group.attrs["ome"]["multiscales"][0]
            )
            datasets = attrs["datasets"]
            assert [d["path"] for d in datasets] == ["0", "1", "2"]
            assert datasets[0]["coordinateTransformations"] == [{"type": "scale", "scale": [1.0, 0.5, 0.5]}]
            assert datasets[1]["coordinateTransformations"] == [
                {"type": "scale", "scale": [1.0, 1.0, 1.0]},
                {"type": "translation", "translation": [0.0, 0.25, 0.25]},
            ]
            assert datasets[2]["coordinateTransformations"][0]["scale"] == [1.0, 2.0, 2.0]
            for index, expected in enumerate(levels):
                np.testing.assert_array_equal(group[str(index)][...], expected)
            _validate(mnt, version)


def test_computed_levels_equal_a_numpy_reference(tmp_path: Path) -> None:
    source = tmp_path / "plain.tif"
    image = np.random.default_rng(3).integers(0, 4000, (1000, 1300), dtype=np.uint16)
    tifffile.imwrite(source, image, tile=(128, 128), compression="zlib")
    with mounted(source, tmp_path / "mnt", "--chunks", "256,256", "--ngff", "all") as mnt:
        group = zarr.open_group(mnt, mode="r", zarr_format=2)
        multiscales = group.attrs["multiscales"][0]
        assert multiscales["type"] == "mean"
        paths = [d["path"] for d in multiscales["datasets"]]
        # Halved until one 256x256 chunk covers the plane: 1000x1300 -> ... -> 250x325 -> 125x163.
        assert paths == ["0", "1", "2", "3"]
        expected = image
        for path in paths[1:]:
            expected = block_reduce(expected, (2, 2), "mean")
            np.testing.assert_array_equal(group[path][...], expected)
            np.testing.assert_array_equal(_ts_read(mnt / path, "zarr3"), expected)
        _validate(mnt, "0.4")
        _validate(mnt, "0.5")


def test_both_layouts_side_by_side_and_each_alone(tmp_path: Path) -> None:
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    source = tmp_path / "stack.ome.tif"
    stack = np.random.default_rng(5).integers(0, 255, (3, 7, 300, 280), dtype=np.uint8)
    tifffile.imwrite(source, stack, tile=(64, 64), metadata={"axes": "CZYX"}, compression="zstd")
    with mounted(source, tmp_path / "all", "--compressor", "blosc-zstd", "--ngff", "all") as mnt:
        names = {path.name for path in mnt.iterdir()}
        assert {".zgroup", ".zattrs", "zarr.json"} <= names
        np.testing.assert_array_equal(zarr.open_group(mnt, mode="r", zarr_format=2)["0"][...], stack)
        np.testing.assert_array_equal(zarr.open_group(mnt, mode="r", zarr_format=3)["0"][...], stack)
        np.testing.assert_array_equal(_ts_read(mnt / "0", "zarr"), stack)
        np.testing.assert_array_equal(_ts_read(mnt / "0", "zarr3"), stack)
        v3 = json.loads((mnt / "0" / "zarr.json").read_text())
        assert v3["dimension_names"] == ["c", "z", "y", "x"]
        assert v3["chunk_key_encoding"] == {"name": "default", "configuration": {"separator": "/"}}
        image = next(iter(Reader(parse_url(str(mnt)))()))
        np.testing.assert_array_equal(np.asarray(image.data[0]), stack)
        _validate(mnt, "0.4")
        _validate(mnt, "0.5")
    with mounted(source, tmp_path / "v2", "--ngff", "0.4") as mnt:
        assert not (mnt / "zarr.json").exists() and not (mnt / "0" / "c").exists()
        np.testing.assert_array_equal(zarr.open_group(mnt, mode="r")["0"][...], stack)
    with mounted(source, tmp_path / "v3", "--ngff", "0.5") as mnt:
        assert not (mnt / ".zgroup").exists() and not (mnt / "0" / ".zarray").exists()
        np.testing.assert_array_equal(zarr.open_group(mnt, mode="r")["0"][...], stack)


@pytest.mark.parametrize("compression", ["zlib", "zstd", None])
def test_native_passthrough_serves_the_stored_tile_bytes(compression: str | None, tmp_path: Path) -> None:
    source = tmp_path / "tiles.tif"
    image = np.random.default_rng(11).integers(0, 2000, (700, 600), dtype=np.uint16)
    tifffile.imwrite(source, image, tile=(256, 256), compression=compression)
    served = {"zlib": "zlib", "zstd": "zstd", None: "none"}[compression]
    with tifffile.TiffFile(source) as tif:
        page = tif.pages[0]
        stored = [
            source.read_bytes()[offset : offset + count]
            for offset, count in zip(page.dataoffsets, page.databytecounts, strict=True)
        ]
    with mounted(
        source,
        tmp_path / "mnt",
        "--chunks",
        "256,256",
        "--compressor",
        served,
        "--levels",
        "1",
        "--ngff",
        "all",
    ) as mnt:
        tiles_across = 3
        for tile_index, tile_bytes in enumerate(stored):
            row, col = divmod(tile_index, tiles_across)
            assert (mnt / "0" / str(row) / str(col)).read_bytes() == tile_bytes
            if served != "zlib":  # Zarr v3 has no zlib codec: there the tiles are re-encoded as gzip
                assert (mnt / "0" / "c" / str(row) / str(col)).read_bytes() == tile_bytes
        np.testing.assert_array_equal(zarr.open_array(mnt / "0", mode="r", zarr_format=2)[...], image)
        np.testing.assert_array_equal(_ts_read(mnt / "0", "zarr"), image)
        np.testing.assert_array_equal(_ts_read(mnt / "0", "zarr3"), image)
        info = zarrfs("info", source, "--chunks", "256,256", "--compressor", served, "--levels", "1").stdout
        assert "stored tiles passed through" in info


@pytest.mark.parametrize("compressor", ["none", "zstd"])
def test_sharded_arrays_read_by_zarr_and_tensorstore(compressor: str, tmp_path: Path) -> None:
    source = tmp_path / "big.tif"
    image = np.random.default_rng(13).integers(0, 9000, (1100, 900), dtype=np.uint16)
    tifffile.imwrite(source, image, tile=(128, 128), compression="zlib")
    options = ("--chunks", "128,128", "--shards", "4", "--compressor", compressor, "--ngff", "0.5")
    with mounted(source, tmp_path / "mnt", *options) as mnt:
        metadata = json.loads((mnt / "0" / "zarr.json").read_text())
        assert metadata["chunk_grid"]["configuration"]["chunk_shape"] == [512, 512]
        assert metadata["codecs"][0]["name"] == "sharding_indexed"
        shard_files = sorted(path for path in (mnt / "0" / "c").rglob("*") if path.is_file())
        assert len(shard_files) == 3 * 2
        for path in shard_files:
            assert path.stat().st_size == len(path.read_bytes())
        np.testing.assert_array_equal(zarr.open_group(mnt, mode="r")["0"][...], image)
        np.testing.assert_array_equal(_ts_read(mnt / "0", "zarr3"), image)
        expected = image
        for path in [d["path"] for d in json.loads((mnt / "zarr.json").read_text())["attributes"]["ome"][
            "multiscales"][0]["datasets"]][1:]:  # fmt: skip
            expected = block_reduce(expected, (2, 2), "mean")  # computed levels, sharded like level 0
            np.testing.assert_array_equal(_ts_read(mnt / path, "zarr3"), expected)
            np.testing.assert_array_equal(zarr.open_array(mnt / path, mode="r")[...], expected)
        _validate(mnt, "0.5")


def test_info_lists_levels_and_layouts(tmp_path: Path) -> None:
    source = tmp_path / "pyramid.ome.tif"
    _write_pyramid(source)
    result = zarrfs("info", source, "--shards", "2", "--levels", "4", "--ngff", "all")
    assert result.returncode == 0, result.stderr
    expected = [
        "0/  shape (2, 600, 520)",
        "1/  shape (2, 300, 260)",
        "3/  shape (2, 75, 65)",
        "computed (mean)",
        "NGFF 0.4 on Zarr v2",
        "NGFF 0.5 on Zarr v3",
        "shard files",
    ]
    for text in expected:
        assert text in result.stdout, text
