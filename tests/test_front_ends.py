"""Every generated case reads back equal through every front end (see frontends.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from block_reference import block_reduce
from frontends import FRONT_ENDS, serve
from tiff_cases import CASES


@pytest.fixture(scope="module")
def case_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cases")


@pytest.mark.parametrize("front_end", FRONT_ENDS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_every_case_reads_back_equal(front_end: str, name: str, case_dir: Path, tmp_path: Path) -> None:
    import tensorstore
    from ome_zarr_models.v04.image import Image

    directory = case_dir / f"{name}-{front_end}"
    directory.mkdir()
    case = CASES[name](directory)
    with serve(front_end, case.path, tmp_path, "--series", str(case.series), "--levels", "3") as served:
        group = served.group(zarr_format=2)
        axes = [axis["name"] for axis in group.attrs["multiscales"][0]["axes"]]
        assert "".join(axes) == case.axes
        Image.from_zarr(group)  # raises unless the NGFF metadata is valid
        levels = group.attrs["multiscales"][0]["datasets"]
        array = group["0"][...]
        assert array.dtype == case.expected.dtype.newbyteorder("<")
        assert array.shape == case.expected.shape
        np.testing.assert_array_equal(array, case.expected)
        spec = served.tensorstore_spec("0")
        if spec is not None:
            np.testing.assert_array_equal(tensorstore.open(spec).result().read().result(), case.expected)
        # Further levels: those the file stores equal tifffile's (its one pyramid case is in canonical order
        # already); computed ones the block mean of the level above, y and x halved, z where it shrank.
        with tifffile.TiffFile(case.path) as tif:
            expected_levels = [level.asarray() for level in tif.series[case.series].levels]
        expected = case.expected
        for index, level in enumerate(levels[1:], start=1):
            array = group[level["path"]][...]
            if index < len(expected_levels):
                expected = expected_levels[index]
            else:
                factors = tuple(
                    2 if axis in "yx" or (axis == "z" and now < before) else 1
                    for axis, now, before in zip(case.axes, array.shape, expected.shape, strict=True)
                )
                expected = block_reduce(expected, factors, "mean")
            if expected.dtype.kind == "f":  # float means may be added in another order than the reference's
                np.testing.assert_allclose(array, expected, rtol=2e-3 if expected.itemsize == 2 else 1e-6)
            else:
                np.testing.assert_array_equal(array, expected, err_msg=f"level {index}")


def _hdf5(directory: Path) -> tuple[Path, np.ndarray, list[str]]:
    import hdf5_cases

    case = hdf5_cases.CASES["shuffle_deflate_3d_uint16"](directory)
    return case.path, case.levels[0], []


def _nifti(directory: Path) -> tuple[Path, np.ndarray, list[str]]:
    import nifti_cases

    path = nifti_cases.CASES["3d_uint16_gz_translated"](directory)
    return path, nifti_cases.reference(path), []


def _zarr(directory: Path) -> tuple[Path, np.ndarray, list[str]]:
    import zarr_cases

    case = zarr_cases.CASES["v3_zstd_named"](directory)
    flags = [part for name, value in case.options.items() for part in (f"--{name}", str(value))]
    return case.path, case.levels[0], flags


def _sequence(directory: Path) -> tuple[Path, np.ndarray, list[str]]:
    planes = [np.random.default_rng(seed).integers(0, 4000, (70, 90), dtype=np.uint16) for seed in range(5)]
    for index, plane in enumerate(planes):
        tifffile.imwrite(directory / f"section_{index + 1}.tif", plane, tile=(32, 32), compression="zlib")
    return directory / "section_*.tif", np.stack(planes), []


FORMATS = {"hdf5": _hdf5, "nifti": _nifti, "zarr": _zarr, "sequence": _sequence}


@pytest.mark.parametrize("front_end", FRONT_ENDS)
@pytest.mark.parametrize("source_format", sorted(FORMATS))
def test_one_case_of_each_format_reads_back_equal(front_end: str, source_format: str, tmp_path: Path) -> None:
    """Every reader behind every front end: level 0 equals the format's own reader (read by zarr-python and,
    where it reaches the front end, tensorstore), level 1 its 2x2 mean."""
    import tensorstore
    from ome_zarr_models.v04.image import Image

    directory = tmp_path / "source"
    directory.mkdir()
    source, expected, flags = FORMATS[source_format](directory)
    with serve(front_end, source, tmp_path, "--levels", "2", *flags) as served:
        group = served.group(zarr_format=2)
        Image.from_zarr(group)
        np.testing.assert_array_equal(group["0"][...], expected)
        spec = served.tensorstore_spec("0")
        if spec is not None:
            np.testing.assert_array_equal(tensorstore.open(spec).result().read().result(), expected)
        level_1 = group["1"][...]
        halved = tuple(
            2 if now < before else 1 for now, before in zip(level_1.shape, expected.shape, strict=True)
        )
        np.testing.assert_array_equal(level_1, block_reduce(expected, halved, "mean"))
