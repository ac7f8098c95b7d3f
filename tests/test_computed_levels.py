"""Computed levels through a real mount: every level of every method equals an independent numpy reference
(tests/block_reference.py), for 8- to 64-bit integers (values near 2^64 and -2^63 included), on Zarr v2 and
v3, sharded and not, read by zarr-python and tensorstore; and the NGFF coordinate transformations each
method's pixels imply."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tensorstore
import tifffile
import zarr
from block_reference import block_reduce
from mounting import mounted

TOP_64 = 2**64 - 1


def _near_the_top_of_uint64(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Mostly within 15 of 2^64 - 1 (float64 rounds every such sum to 2^64 or more), one band full range."""
    image = np.full(shape, TOP_64, np.uint64) - rng.integers(0, 16, shape).astype(np.uint64)
    image[: shape[0] // 4] = rng.integers(0, TOP_64, (shape[0] // 4, *shape[1:]), np.uint64, endpoint=True)
    return image


def _near_both_ends_of_int64(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Values within 15 of -2^63 or of 2^63 - 1, and odd values just above 2^53 (float64 drops their last
    bit)."""
    ends = np.array([-(2**63), 2**63 - 16, 2**53 + 1], np.int64)
    return rng.choice(ends, shape) + rng.integers(0, 16, shape)


# name: (image maker, axes, --downsample, the factors of each computed level)
CASES: dict[str, tuple[Callable[[np.random.Generator], np.ndarray], str, str, list[tuple[int, ...]]]] = {
    "uint16-mean": (
        lambda rng: rng.integers(0, 65535, (300, 259), np.uint16, endpoint=True),
        "YX",
        "mean",
        [(2, 2)] * 3,
    ),
    "uint64-mean-near-2^64": (
        lambda rng: _near_the_top_of_uint64(rng, (300, 259)),
        "YX",
        "mean",
        [(2, 2)] * 3,
    ),
    "int64-mean-near-both-ends": (
        lambda rng: _near_both_ends_of_int64(rng, (300, 259)),
        "YX",
        "mean",
        [(2, 2)] * 3,
    ),
    # Sizes unknown, so z is halved along with y and x; one-plane chunks: blocks straddle two chunks.
    "uint8-zyx-mean": (
        lambda rng: rng.integers(0, 255, (9, 150, 131), np.uint8, endpoint=True),
        "ZYX",
        "mean",
        [(2, 2, 2)] * 2,
    ),
    # Few distinct values, so that blocks hold repeats and ties.
    "uint16-mode": (lambda rng: rng.integers(0, 4, (300, 259)).astype(np.uint16), "YX", "mode", [(2, 2)] * 3),
    "uint64-mode": (
        lambda rng: TOP_64 - rng.integers(0, 3, (300, 259)).astype(np.uint64),
        "YX",
        "mode",
        [(2, 2)] * 3,
    ),
    "int16-nearest": (
        lambda rng: rng.integers(-(2**15), 2**15, (300, 259)).astype(np.int16),
        "YX",
        "nearest",
        [(2, 2)] * 3,
    ),
}


def _ts_read(path: Path, driver: str) -> np.ndarray:
    spec = {"driver": driver, "kvstore": {"driver": "file", "path": str(path)}}
    return tensorstore.open(spec).result().read().result()


def _multiscale(mnt: Path, layout: str) -> dict:
    if layout == "v2":
        return json.loads((mnt / ".zattrs").read_text())["multiscales"][0]
    return json.loads((mnt / "zarr.json").read_text())["attributes"]["ome"]["multiscales"][0]


def _expected_levels(image: np.ndarray, method: str, factors: list[tuple[int, ...]]) -> list[np.ndarray]:
    levels = [image]
    for level_factors in factors:
        levels.append(block_reduce(levels[-1], level_factors, method))
    return levels


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_computed_level_equals_the_reference_in_every_layout(name: str, tmp_path: Path) -> None:
    make, axes, method, factors = CASES[name]
    image = make(np.random.default_rng(len(name)))
    if axes == "YX":  # a plain TIFF: OME-XML has no 64-bit integer types
        source = tmp_path / f"{name}.tif"
        tifffile.imwrite(source, image, tile=(64, 64))
    else:
        source = tmp_path / f"{name}.ome.tif"
        tifffile.imwrite(source, image, tile=(64, 64), metadata={"axes": axes})
    expected = _expected_levels(image, method, factors)
    paths = [str(index) for index in range(len(expected))]
    options = ("--chunks", "64,64", "--downsample", method)
    with mounted(source, tmp_path / "both", *options, "--ngff", "all") as mnt:
        for layout, driver in (("v2", "zarr"), ("v3", "zarr3")):
            multiscale = _multiscale(mnt, layout)
            assert [dataset["path"] for dataset in multiscale["datasets"]] == paths
            assert multiscale["type"] == method
            group = zarr.open_group(mnt, mode="r", zarr_format=2 if layout == "v2" else 3)
            for path, want in zip(paths, expected, strict=True):
                assert group[path].dtype == image.dtype
                np.testing.assert_array_equal(group[path][...], want, err_msg=f"{layout} level {path}")
                np.testing.assert_array_equal(_ts_read(mnt / path, driver), want, err_msg=f"{driver} {path}")
    with mounted(source, tmp_path / "sharded", *options, "--ngff", "0.5", "--shards", "2") as mnt:
        group = zarr.open_group(mnt, mode="r", zarr_format=3)
        for path, want in zip(paths, expected, strict=True):
            metadata = json.loads((mnt / path / "zarr.json").read_text())
            assert metadata["codecs"][0]["name"] == "sharding_indexed"
            np.testing.assert_array_equal(group[path][...], want, err_msg=f"sharded level {path}")
            np.testing.assert_array_equal(_ts_read(mnt / path, "zarr3"), want, err_msg=f"sharded {path}")


def _write_with_stored_half_level(path: Path, image: np.ndarray) -> None:
    """An OME-TIFF with pixel size 0.5 µm and one stored reduced level in a SubIFD."""
    with tifffile.TiffWriter(path, ome=True) as writer:
        metadata = {"axes": "YX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5}
        writer.write(image, subifds=1, metadata=metadata, tile=(64, 64))
        writer.write(image[::2, ::2], subfiletype=1, tile=(64, 64))


@pytest.mark.parametrize("method", ["mean", "mode", "nearest"])
def test_coordinate_transformations_follow_the_method(method: str, tmp_path: Path) -> None:
    # A level-0 pixel is 0.5 µm, centred at 0. Mean and mode summarise blocks of f level-0 pixels, centred
    # (f - 1) / 2 pixels in; nearest takes each block's first pixel, so its centres stay where the level it
    # was taken from has them: at 0 for levels made from level 0, at the stored level's centres after it.
    # The stored level 1 counts as an averaged one (how a file's pyramid was made is not recorded).
    image = np.random.default_rng(1).integers(0, 9, (300, 260), np.uint16)
    plain, pyramid = tmp_path / "plain.ome.tif", tmp_path / "pyramid.ome.tif"
    tifffile.imwrite(
        plain, image, tile=(64, 64), metadata={"axes": "YX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5}
    )
    _write_with_stored_half_level(pyramid, image)
    averaged = method != "nearest"
    cases = [
        # level: (scale, translation or None)
        (plain, [(0.5, None), (1.0, 0.25 if averaged else None), (2.0, 0.75 if averaged else None)]),
        (
            pyramid,
            [(0.5, None), (1.0, 0.25), (2.0, 0.75 if averaged else 0.25), (4.0, 1.75 if averaged else 0.25)],
        ),
    ]
    for source, levels in cases:
        with mounted(
            source,
            tmp_path / source.stem,
            "--levels",
            str(len(levels)),
            "--downsample",
            method,
            "--ngff",
            "all",
        ) as mnt:
            for layout in ("v2", "v3"):
                datasets = _multiscale(mnt, layout)["datasets"]
                served = [dataset["coordinateTransformations"] for dataset in datasets]
                expected = [
                    [{"type": "scale", "scale": [scale, scale]}]
                    + ([] if shift is None else [{"type": "translation", "translation": [shift, shift]}])
                    for scale, shift in levels
                ]
                assert served == expected, (source.name, layout)
