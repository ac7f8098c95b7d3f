"""The NIfTI reader: the conformance suite on files nibabel writes, their metadata, random access into gzip,
and bad input (one line at open, or an error for the reads that need missing bytes)."""

from __future__ import annotations

import gzip
import itertools
import math
import struct
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nifti_cases import CASES, TRANSLATED, gzip_file, patched, reference

from zarrfs.errors import SourceError
from zarrfs.sources import PhysicalSize, open_source
from zarrfs.sources.nifti.gzindex import GzipStream
from zarrfs.sources.nifti.source import NiftiSource
from zarrfs.sources.pixelfile import PixelFile
from zarrfs.testing import SourceCase, SourceConformance


@pytest.fixture(scope="module")
def case_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("nifti")


def case_path(name: str, case_dir: Path) -> Path:
    """The case's file, written once per module."""
    directory = case_dir / name
    if not directory.exists():
        directory.mkdir()
        return CASES[name](directory)
    return next(directory.iterdir())


class TestNiftiSource(SourceConformance):
    @pytest.fixture(params=sorted(CASES))
    def case(self, request: pytest.FixtureRequest, case_dir: Path) -> SourceCase:
        path = case_path(request.param, case_dir)
        return SourceCase(lambda: NiftiSource(str(path)), [reference(path)], [path])


def _whole(source: NiftiSource) -> np.ndarray:
    return source.read_region(0, tuple(slice(0, extent) for extent in source.info.levels[0].shape))


@pytest.mark.parametrize(
    ("name", "axes", "dtype"),
    [
        ("2d_int16", "yx", "int16"),
        ("3d_uint16_gz_translated", "zyx", "uint16"),
        ("4d_int8_nifti2", "tzyx", "int8"),
        ("5d_uint8_vector", "tczyx", "uint8"),
        ("5d_float32_vector_gz_one_time_point", "tczyx", "float32"),
        ("3d_rgb24", "czyx", "uint8"),
        ("4d_rgba32_nifti2_gz", "tczyx", "uint8"),
        ("2d_rgb24", "cyx", "uint8"),
        ("3d_float32_big_endian", "zyx", "float32"),
        ("3d_complex128_big_endian", "zyx", "complex128"),
        # Scaled: nibabel's dataobj gives float64 (complex128) whatever the stored type.
        ("3d_int16_scaled", "zyx", "float64"),
        ("3d_uint8_scaled_gz", "zyx", "float64"),
        ("3d_float32_scaled", "zyx", "float64"),
        ("3d_complex64_scaled", "zyx", "complex128"),
        ("3d_int16_slope_1_inter_0", "zyx", "int16"),
    ],
)
def test_axes_and_served_type_follow_the_header_and_nibabel(
    name: str, axes: str, dtype: str, case_dir: Path
) -> None:
    path = case_path(name, case_dir)
    expected = reference(path)
    with open_source(path) as source:
        assert source.info.axes == axes
        assert source.info.dtype == np.dtype(dtype) == expected.dtype.newbyteorder("=")
        assert source.info.levels[0].shape == expected.shape
        assert source.info.description.startswith("NIfTI-")


def test_pixel_sizes_and_units_come_from_pixdim_and_xyzt_units(case_dir: Path) -> None:
    with open_source(case_path("4d_int8_nifti2", case_dir)) as source:
        assert source.info.physical_sizes == {
            "x": PhysicalSize(0.5, "micrometer"),
            "y": PhysicalSize(0.5, "micrometer"),
            "z": PhysicalSize(2.0, "micrometer"),
            "t": PhysicalSize(150.0, "millisecond"),
        }
    with open_source(case_path("3d_uint16_gz_translated", case_dir)) as source:
        sizes = source.info.physical_sizes
        assert sizes == {
            axis: PhysicalSize(size, "millimeter") for axis, size in zip("xyz", (2, 3, 4), strict=True)
        }
    with open_source(case_path("3d_float32_big_endian", case_dir)) as source:  # units unknown
        assert source.info.physical_sizes == {axis: PhysicalSize(1.0, None) for axis in "xyz"}


@pytest.mark.parametrize(
    ("name", "affine", "unit"),
    [
        ("3d_uint16_gz_translated", TRANSLATED, "millimeter"),
        ("3d_int16_qform", TRANSLATED, "micrometer"),
        ("3d_float64_rotated", None, None),
        ("3d_int16_flipped", None, None),
    ],
)
def test_the_origin_is_the_affine_translation_where_it_only_scales_and_shifts(
    name: str, affine: np.ndarray | None, unit: str | None, case_dir: Path
) -> None:
    path = case_path(name, case_dir)
    image = nib.load(str(path))
    with open_source(path) as source:
        if affine is None:
            assert source.info.origin == {}
            linear = image.affine[:3, :3]  # rotated or flipped, as nibabel reads it
            assert not (np.allclose(linear, np.diag(np.diag(linear))) and np.all(np.diag(linear) > 0))
            return
        np.testing.assert_allclose(image.affine, affine, rtol=1e-6)
        assert source.info.origin == {
            axis: PhysicalSize(pytest.approx(float(affine[index, 3])), unit)
            for index, axis in enumerate("xyz")
        }


def _header_on_disk(path: Path) -> nib.Nifti1Header:
    """The header as stored (nibabel's loaded image moves the scale factors out of its header)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        first = handle.read(4)
        handle.seek(0)
        nifti2 = 540 in (struct.unpack("<i", first)[0], struct.unpack(">i", first)[0])
        klass = nib.Nifti2Header if nifti2 else nib.Nifti1Header
        return klass.from_fileobj(handle, check=False)


@pytest.mark.parametrize(
    "name", ["3d_int16_scaled", "4d_float32_nifti2_gz_big_endian", "3d_uint16_gz_translated"]
)
def test_the_whole_header_is_kept_as_json(name: str, case_dir: Path) -> None:
    path = case_path(name, case_dir)
    stored = _header_on_disk(path)
    with open_source(path) as source:
        kept = source.info.attributes["nifti"]
    assert list(kept) == list(stored.keys())
    for field in stored:
        value = np.asarray(stored[field])
        got = kept[field]
        if value.dtype.kind == "S":
            assert got == value.item().decode("latin-1").rstrip("\0")
        elif value.dtype.kind == "f":
            flat = value.ravel().tolist()
            shown = got if isinstance(got, list) else [got]
            for number, json_number in zip(flat, shown, strict=True):
                assert (json_number == "NaN") if math.isnan(number) else json_number == number, field
        else:
            assert got == value.tolist(), field
    assert kept["dim"] == [int(value) for value in stored["dim"]]


def test_scaled_values_are_nibabels_exactly(case_dir: Path) -> None:
    path = case_path("3d_int16_scaled", case_dir)
    image = nib.load(str(path))
    assert (image.dataobj.slope, image.dataobj.inter) == (2.5, -3.0)
    with open_source(path) as source:
        np.testing.assert_array_equal(_whole(source), np.asanyarray(image.dataobj).T)


# --- random access into gzip ------------------------------------------------------------------------------


def _gzip_stream(path: Path, span: int) -> tuple[GzipStream, PixelFile]:
    file = PixelFile(str(path))
    return GzipStream(file, span, cache_bytes=4 * span), file


def _read(stream: GzipStream, offset: int, count: int, length: int, stride: int) -> np.ndarray:
    rows = np.zeros((count, length), np.uint8)
    stream.read_rows_into(rows, offset, stride)
    return rows


def _expected_rows(data: bytes, offset: int, count: int, length: int, stride: int) -> np.ndarray:
    return np.array(
        [list(data[offset + row * stride : offset + row * stride + length]) for row in range(count)], np.uint8
    ).reshape(count, length)


@pytest.mark.parametrize("members", [1, 3])
def test_gzip_rows_read_at_random_equal_the_decompressed_stream(members: int, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    data = (np.arange(300_000) % 251).astype(np.uint8).tobytes() + rng.integers(
        0, 256, 50_000, np.uint8
    ).tobytes()
    cuts = np.linspace(0, len(data), members + 1, dtype=int)
    # Concatenated members, as pigz and `cat a.gz b.gz` write them.
    path = tmp_path / "data.gz"
    path.write_bytes(b"".join(gzip.compress(data[a:b], 6) for a, b in itertools.pairwise(cuts)))
    stream, file = _gzip_stream(path, span=4096)
    try:
        for _ in range(300):
            length = int(rng.integers(1, 9000))
            stride = length + int(rng.choice([0, rng.integers(1, 20_000)]))
            count = int(rng.integers(1, 6))
            offset = int(rng.integers(0, len(data) - (count - 1) * stride - length))
            np.testing.assert_array_equal(
                _read(stream, offset, count, length, stride),
                _expected_rows(data, offset, count, length, stride),
            )
        with pytest.raises(SourceError, match="the gzip stream ends"):
            _read(stream, len(data) - 10, 1, 11, 11)
    finally:
        file.close()


def test_gzip_seek_points_are_taken_only_as_far_as_reads_go(tmp_path: Path) -> None:
    data = bytes(range(256)) * 4000
    path = tmp_path / "data.gz"
    path.write_bytes(gzip.compress(data))
    stream, file = _gzip_stream(path, span=10_000)
    try:
        assert stream.seek_points == 1
        _read(stream, 25_000, 1, 100, 100)
        assert stream.seek_points == 4  # spans 0-2 read through, the point after span 2 kept
        _read(stream, 5, 1, 100, 100)
        assert stream.seek_points == 4
    finally:
        file.close()


def _truncated_gzip_prefix(data: bytes) -> int:
    """How many bytes of the stream a truncated gzip file still gives (zlib decompressing it, the oracle)."""
    return len(zlib.decompressobj(31).decompress(data))


def test_a_truncated_nii_gz_serves_the_chunks_before_the_damage_and_fails_after(
    case_dir: Path, tmp_path: Path
) -> None:
    path = case_path("3d_uint8_gz_spans", case_dir)
    expected = reference(path)
    compressed = path.read_bytes()
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(compressed[: int(len(compressed) * 0.8)])
    available = _truncated_gzip_prefix(broken.read_bytes())
    with open_source(broken) as source:
        offset = source.image.layout.offset
        plane = expected.shape[1] * expected.shape[2]
        whole_planes = (available - offset) // plane
        assert 0 < whole_planes < expected.shape[0]
        # Past the first 4 MiB span: served from the span the damage cuts short.
        assert offset + whole_planes * plane > 4 * 2**20
        served = source.read_region(0, (slice(0, whole_planes), slice(0, 200), slice(0, 256)))
        np.testing.assert_array_equal(served, expected[:whole_planes])
        with pytest.raises(SourceError, match="the gzip file is truncated"):
            source.read_region(0, (slice(whole_planes, whole_planes + 1), slice(0, 200), slice(0, 256)))
        with pytest.raises(SourceError, match="the gzip file is truncated"):
            source.read_region(0, (slice(expected.shape[0] - 1, expected.shape[0]), slice(0, 1), slice(0, 1)))
        # Still serving what is there.
        np.testing.assert_array_equal(
            source.read_region(0, (slice(3, 4), slice(5, 9), slice(0, 3))), expected[3:4, 5:9, 0:3]
        )


def test_damaged_gzip_data_fails_the_reads_from_where_zlib_finds_it(case_dir: Path, tmp_path: Path) -> None:
    path = case_path("3d_uint8_gz_spans", case_dir)  # (z, y, x) = (110, 200, 256) uint8
    expected = reference(path)
    data = bytearray(path.read_bytes())
    damage = len(data) * 2 // 3
    data[damage : damage + 64] = b"\xff" * 64  # an invalid deflate block type, zlib says
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(bytes(data))
    with open_source(broken) as source:
        half = expected.shape[0] // 2
        np.testing.assert_array_equal(
            source.read_region(0, (slice(0, half), slice(0, 200), slice(0, 256))), expected[:half]
        )
        with pytest.raises(SourceError, match="gzip data is damaged after compressed byte"):
            source.read_region(0, (slice(109, 110), slice(0, 1), slice(0, 1)))


def test_a_truncated_nii_serves_the_chunks_before_the_end_and_fails_after(
    case_dir: Path, tmp_path: Path
) -> None:
    path = case_path("3d_uint16", case_dir)  # (z, y, x) = (5, 13, 17) uint16
    expected = reference(path)
    data = path.read_bytes()
    broken = tmp_path / "broken.nii"
    plane = 13 * 17 * 2
    broken.write_bytes(data[: len(data) - plane - 10])  # the last plane and a bit of the one before lost
    with open_source(broken) as source:
        np.testing.assert_array_equal(
            source.read_region(0, (slice(0, 3), slice(0, 13), slice(0, 17))), expected[:3]
        )
        with pytest.raises(SourceError, match="truncated"):
            source.read_region(0, (slice(3, 4), slice(0, 13), slice(0, 17)))


def test_a_bad_magic_is_not_claimed(case_dir: Path, tmp_path: Path) -> None:
    bad = patched(case_path("3d_uint16", case_dir), tmp_path / "bad.nii", 344, b"xy1\0")
    with pytest.raises(SourceError, match="not a supported image format"):
        open_source(bad)
    with pytest.raises(SourceError, match="not a supported image format"):
        open_source(gzip_file(bad, tmp_path / "bad.nii.gz"))
    nifti2 = patched(case_path("4d_int8_nifti2", case_dir), tmp_path / "bad2.nii", 4, b"n+3\0")
    with pytest.raises(SourceError, match="not a supported image format"):
        open_source(nifti2)


def test_a_vox_offset_past_the_end_is_refused_at_open(case_dir: Path, tmp_path: Path) -> None:
    path = case_path("3d_uint16", case_dir)
    past = float(path.stat().st_size + 1000)
    bad = patched(path, tmp_path / "bad.nii", 108, struct.pack("<f", past))
    with pytest.raises(SourceError, match=r"vox_offset \d+ is past the end of the file"):
        open_source(bad)
    inside = patched(path, tmp_path / "inside.nii", 108, struct.pack("<f", 100.0))
    with pytest.raises(SourceError, match=r"vox_offset 100\.0 lies inside the 348-byte header"):
        open_source(inside)


def test_a_gzipped_vox_offset_past_the_end_fails_each_read(case_dir: Path, tmp_path: Path) -> None:
    path = case_path("3d_uint16", case_dir)
    bad = patched(path, tmp_path / "bad.nii", 108, struct.pack("<f", float(path.stat().st_size + 1000)))
    with (
        open_source(gzip_file(bad, tmp_path / "bad.nii.gz")) as source,
        pytest.raises(SourceError, match="the gzip stream ends"),
    ):
        source.read_region(0, (slice(0, 1), slice(0, 1), slice(0, 1)))


@pytest.mark.parametrize(
    ("dim", "message"),
    [
        ([6, 4, 4, 4, 1, 1, 2, 1], "more than 5 dimensions"),
        ([1, 64, 1, 1, 1, 1, 1, 1], "one dimension"),
        ([3, 4, 0, 4, 1, 1, 1, 1], "sizes below 1"),
        ([9, 4, 4, 4, 1, 1, 1, 1], "not 1 to 7"),
    ],
)
def test_dimensions_zarrfs_cannot_serve_are_one_line_errors(
    dim: list[int], message: str, case_dir: Path, tmp_path: Path
) -> None:
    bad = patched(case_path("3d_uint16", case_dir), tmp_path / "bad.nii", 40, struct.pack("<8h", *dim))
    with pytest.raises(SourceError, match=message):
        open_source(bad)


def test_six_dimensions_of_which_the_last_are_one_are_served_as_five(case_dir: Path, tmp_path: Path) -> None:
    path = case_path("5d_uint8_vector", case_dir)
    six = patched(path, tmp_path / "six.nii", 40, struct.pack("<8h", 6, 11, 12, 13, 2, 3, 1, 1))
    with open_source(six) as source:
        assert source.info.axes == "tczyx"
        np.testing.assert_array_equal(_whole(source), reference(path))


def test_a_voxel_type_zarr_lacks_is_a_one_line_error(case_dir: Path, tmp_path: Path) -> None:
    bad = patched(case_path("3d_uint16", case_dir), tmp_path / "bad.nii", 70, struct.pack("<hh", 1536, 128))
    with pytest.raises(
        SourceError, match=r"NIfTI datatype 1536 \(NIFTI_TYPE_FLOAT128\) has no Zarr equivalent"
    ):
        open_source(bad)


def test_an_origin_is_served_only_on_axes_whose_size_has_its_unit() -> None:
    from zarrfs.core.ngff import level_transformations
    from zarrfs.sources import Level, SourceInfo

    info = SourceInfo(
        axes="zyx",
        dtype=np.dtype("uint8"),
        levels=[Level((4, 4, 4), (1, 1, 4))],
        # x's size in another unit (as --pixel-size x=0.5um sets it): its origin would be wrong there
        physical_sizes={
            "z": PhysicalSize(4.0, "millimeter"),
            "y": PhysicalSize(3.0, "millimeter"),
            "x": PhysicalSize(0.5, "micrometer"),
        },
        origin={
            axis: PhysicalSize(value, "millimeter")
            for axis, value in zip("zyx", (30.0, 20.0, -10.0), strict=True)
        },
    )
    assert level_transformations(info, (1, 1, 1), (0, 0, 0)) == [
        {"type": "scale", "scale": [4.0, 3.0, 0.5]},
        {"type": "translation", "translation": [30.0, 20.0, 0.0]},
    ]
    assert level_transformations(info, (1, 2, 2), (0, 0.5, 0.5))[1] == {
        "type": "translation",
        "translation": [30.0, 21.5, 0.25],
    }
