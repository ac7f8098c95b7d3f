"""NIfTI through a real FUSE mount: zarr-python and tensorstore read what nibabel's dataobj gives, the NGFF
metadata validates and carries the header, and bad files fail cleanly (one line, or EIO for their chunks)."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import zarr
from mounting import mounted, validate_ngff, zarrfs
from nifti_cases import CASES, TRANSLATED, gzip_file, patched, reference
from test_cli_errors import assert_clean_failure


@pytest.fixture(scope="module")
def case_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("nifti-mount")


def _case(name: str, case_dir: Path) -> Path:
    directory = case_dir / name
    directory.mkdir(exist_ok=True)
    return CASES[name](directory)


def _tensorstore(array: Path, driver: str) -> np.ndarray:
    import tensorstore

    spec = {"driver": driver, "kvstore": {"driver": "file", "path": str(array)}}
    return np.asarray(tensorstore.open(spec).result().read().result())


MOUNTED_CASES = [
    "2d_int16",
    "3d_uint16_gz_translated",
    "3d_float32_big_endian",
    "4d_float32_nifti2_gz_big_endian",
    "5d_uint8_vector",
    "3d_int16_scaled",
    "3d_uint8_scaled_gz",
    "3d_complex64",
    "4d_rgba32_nifti2_gz",
    "3d_uint8_gz_spans",
]


@pytest.mark.parametrize("name", MOUNTED_CASES)
def test_zarr_and_tensorstore_read_nibabels_values_through_the_mount(
    name: str, case_dir: Path, tmp_path: Path
) -> None:
    from ome_zarr_models.v04.image import Image

    path = _case(name, case_dir)
    expected = reference(path)
    with mounted(path, tmp_path / "mnt", "--ngff", "all", "--levels", "1") as mnt:
        group = zarr.open_group(mnt, mode="r", zarr_format=2)
        Image.from_zarr(group)
        served = group["0"][...]
        assert served.dtype == expected.dtype.newbyteorder("<")
        np.testing.assert_array_equal(served, expected)
        np.testing.assert_array_equal(_tensorstore(mnt / "0", "zarr"), expected)
        np.testing.assert_array_equal(_tensorstore(mnt / "0", "zarr3"), expected)
        v3 = zarr.open_group(mnt, mode="r", zarr_format=3)
        np.testing.assert_array_equal(v3["0"][...], expected)
        validate_ngff(mnt)


def test_ngff_metadata_has_nifti_sizes_units_origin_and_header(case_dir: Path, tmp_path: Path) -> None:
    path = _case("3d_uint16_gz_translated", case_dir)
    with mounted(path, tmp_path / "mnt", "--ngff", "all", "--levels", "2") as mnt:
        attributes = json.loads((mnt / ".zattrs").read_text())
        v3_attributes = json.loads((mnt / "zarr.json").read_text())["attributes"]
        validate_ngff(mnt)
    multiscale = attributes["multiscales"][0]
    assert multiscale["axes"] == [{"name": axis, "type": "space", "unit": "millimeter"} for axis in "zyx"]
    level0, level1 = (dataset["coordinateTransformations"] for dataset in multiscale["datasets"])
    # pixdim (2, 3, 4) for x, y, z; the affine's translation (x, y, z) = (-10.5, 20, 30.25), in z, y, x order.
    assert level0 == [
        {"type": "scale", "scale": [4.0, 3.0, 2.0]},
        {"type": "translation", "translation": [30.25, 20.0, -10.5]},
    ]
    # Level 1 halves y and x: its first pixel's centre moves by half a level-0 pixel on each.
    assert level1 == [
        {"type": "scale", "scale": [4.0, 6.0, 4.0]},
        {"type": "translation", "translation": [30.25, 20.0 + 1.5, -10.5 + 1.0]},
    ]
    np.testing.assert_allclose(nib.load(str(path)).affine, TRANSLATED)
    header = attributes["nifti"]
    assert header["dim"][:4] == [3, 50, 40, 30] and header["magic"] == "n+1"
    assert header["srow_x"] == [2.0, 0.0, 0.0, -10.5]
    assert v3_attributes["nifti"] == header and "ome" in v3_attributes


def test_info_shows_the_format_and_origin(case_dir: Path) -> None:
    path = _case("3d_uint16_gz_translated", case_dir)
    result = zarrfs("info", path)
    assert result.returncode == 0, result.stderr
    assert "NIfTI-1, little-endian, uint16, gzip (seek points every 4 MiB)" in result.stdout
    assert "origin:    x -10.5 millimeter, y 20 millimeter, z 30.25 millimeter" in result.stdout


def test_a_truncated_nii_gz_gives_eio_for_chunks_past_the_damage_only(case_dir: Path, tmp_path: Path) -> None:
    path = _case("3d_uint8_gz_spans", case_dir)  # (z, y, x) = (110, 200, 256) uint8
    expected = reference(path)
    data = path.read_bytes()
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(data[: len(data) // 2])
    with mounted(broken, tmp_path / "mnt", "--ngff", "all", "--chunks", "1,200,256", "--levels", "1") as mnt:
        first = zarr.open_array(mnt / "0", mode="r", zarr_format=2)[:5]
        np.testing.assert_array_equal(first, expected[:5])
        with pytest.raises(OSError) as raised:
            (mnt / "0" / "109" / "0" / "0").read_bytes()
        assert raised.value.errno == errno.EIO
        np.testing.assert_array_equal((mnt / "0" / "3" / "0" / "0").read_bytes(), expected[3].tobytes())
    assert "the gzip file is truncated" in (tmp_path / "zarrfs.log").read_text()


def test_a_truncated_nii_gives_eio_for_chunks_past_the_end_only(case_dir: Path, tmp_path: Path) -> None:
    path = _case("3d_uint16", case_dir)  # (z, y, x) = (5, 13, 17) uint16
    expected = reference(path)
    broken = tmp_path / "broken.nii"
    broken.write_bytes(path.read_bytes()[: -13 * 17 * 2])
    with mounted(broken, tmp_path / "mnt", "--ngff", "all", "--chunks", "1,13,17", "--levels", "1") as mnt:
        np.testing.assert_array_equal((mnt / "0" / "3" / "0" / "0").read_bytes(), expected[3].tobytes())
        with pytest.raises(OSError) as raised:
            (mnt / "0" / "4" / "0" / "0").read_bytes()
        assert raised.value.errno == errno.EIO


def test_bad_magic_and_vox_offset_past_the_end_fail_the_mount_with_one_line(
    case_dir: Path, tmp_path: Path
) -> None:
    import struct

    path = _case("3d_uint16", case_dir)
    bad_magic = patched(path, tmp_path / "magic.nii", 344, b"xy1\0")
    past = patched(path, tmp_path / "past.nii", 108, struct.pack("<f", path.stat().st_size + 64.0))
    for source, fragment in [
        (bad_magic, "not a supported image format"),
        (gzip_file(bad_magic, tmp_path / "magic.nii.gz"), "not a supported image format"),
        (past, "is past the end of the file"),
    ]:
        mountpoint = tmp_path / f"mnt-{source.name}"
        mountpoint.mkdir()
        assert_clean_failure(zarrfs("mount", source, mountpoint), fragment)
        assert_clean_failure(zarrfs("info", source), fragment)
