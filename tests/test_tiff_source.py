"""TiffSource against the generated case matrix: axes, pixels, metadata, errors, threads and open cost."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
from tiff_cases import CASES, Case, write_bad_files

from zarrfs.errors import SourceError
from zarrfs.sources import open_source, pixelfile
from zarrfs.sources.base import Channel, PhysicalSize
from zarrfs.sources.pixelfile import PixelFile
from zarrfs.sources.tiff import TiffSource, is_tiff_header
from zarrfs.units import udunits_name

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def case_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiff_cases")


@pytest.fixture(scope="module")
def cases(case_dir: Path) -> dict[str, Case]:
    return {name: make(case_dir) for name, make in CASES.items()}


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_bad_files(tmp_path_factory.mktemp("bad_tiffs"))


def _open(case: Case) -> TiffSource:
    return TiffSource(str(case.path), case.series)


def _whole(shape: tuple[int, ...]) -> tuple[slice, ...]:
    return tuple(slice(0, size) for size in shape)


def _assert_same(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.dtype == expected.dtype
    assert actual.dtype.isnative
    assert actual.shape == expected.shape
    assert actual.tobytes() == expected.tobytes()


def _regions(
    name: str, shape: tuple[int, ...], unit: tuple[int, ...], count: int = 12
) -> list[tuple[slice, ...]]:
    """Edge pixels, windows straddling storage-unit borders, and random boxes (seeded by the case name)."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    last_pixel = tuple(slice(size - 1, size) for size in shape)
    first_pixel = tuple(slice(0, 1) for _ in shape)
    straddling = tuple(
        slice(max(0, min(step, size - 1) - 3), min(size, min(step, size - 1) + 4))
        for step, size in zip(unit, shape, strict=True)
    )
    bottom_right = tuple(slice(size // 2, size) for size in shape)
    regions = [last_pixel, first_pixel, straddling, bottom_right]
    for _ in range(count):
        starts = [int(rng.integers(0, size)) for size in shape]
        regions.append(
            tuple(
                slice(start, int(rng.integers(start + 1, size + 1)))
                for start, size in zip(starts, shape, strict=True)
            )
        )
    return regions


@pytest.mark.parametrize("name", CASES)
def test_whole_level_matches_tifffile(cases: dict[str, Case], name: str) -> None:
    case = cases[name]
    with _open(case) as source:
        assert source.info.axes == case.axes
        assert source.info.dtype == case.expected.dtype
        assert source.info.levels[0].shape == case.expected.shape
        _assert_same(source.read_region(0, _whole(case.expected.shape)), case.expected)


@pytest.mark.parametrize("name", CASES)
def test_subregions_match_tifffile(cases: dict[str, Case], name: str) -> None:
    case = cases[name]
    with _open(case) as source:
        level = source.info.levels[0]
        for region in _regions(name, level.shape, level.storage_unit):
            _assert_same(source.read_region(0, region), case.expected[region])


def test_registry_opens_tiff(cases: dict[str, Case]) -> None:
    case = cases["ome_5d_xyczt"]
    with open_source(case.path) as source:
        assert isinstance(source, TiffSource)
        assert source.info.axes == "tczyx"


# --- storage units and description ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "unit"),
    [
        ("uint16_tiled_zlib", (64, 64)),
        ("int16_strips_lzw", (7, 201)),
        ("uint8_strips_raw", (1, 131)),  # uncompressed rows are read without waste at any height
        ("rgb_interleaved", (3, 1, 101)),
        ("jpeg_rgb", (3, 64, 64)),  # a chunk covering all samples decodes each tile once
        ("rgb_planar_separate", (1, 32, 32)),
        ("ome_rgb_channels", (3, 16, 32)),
        ("ome_5d_xyczt", (1, 1, 1, 32, 48)),
        ("volumetric_tiles", (8, 32, 32)),
        ("single_big_strip", (700, 530)),
    ],
)
def test_storage_unit(cases: dict[str, Case], name: str, unit: tuple[int, ...]) -> None:
    with _open(cases[name]) as source:
        assert source.info.levels[0].storage_unit == unit


@pytest.mark.parametrize(
    ("name", "description"),
    [
        ("ome_5d_xyczt", "OME-TIFF, tiled 32x48, adobe_deflate, uint16, series 0 of 1"),
        ("bigtiff_tiled", "TIFF, BigTIFF, tiled 64x64, adobe_deflate, uint16, series 0 of 1"),
        ("int16_strips_lzw", "TIFF, strips of 7 rows, lzw, int16, series 0 of 1"),
        (
            "big_endian_predictor",
            "TIFF, strips of 9 rows, adobe_deflate + floatingpoint predictor, float32, big-endian, "
            "series 0 of 1",
        ),
        ("imagej_hyperstack", "ImageJ TIFF, one strip per plane, uncompressed, uint16, series 0 of 1"),
        ("ome_pyramid", "OME-TIFF, tiled 64x64, adobe_deflate, uint16, 3 levels, series 0 of 1"),
        ("multi_series", "TIFF, tiled 16x16, uncompressed, uint16, series 1 of 2"),
        ("rgb_planar_separate", "TIFF, tiled 32x32, adobe_deflate, uint8, planar samples, series 0 of 1"),
    ],
)
def test_description(cases: dict[str, Case], name: str, description: str) -> None:
    with _open(cases[name]) as source:
        assert source.info.description == description


# --- pyramids ------------------------------------------------------------------------------------------


def test_pyramid_levels(cases: dict[str, Case]) -> None:
    case = cases["ome_pyramid"]
    with _open(case) as source:
        assert [level.shape for level in source.info.levels] == [(2, 300, 260), (2, 150, 130), (2, 75, 65)]
        for index in (1, 2):
            expected = tifffile.imread(case.path, level=index)
            shape = source.info.levels[index].shape
            _assert_same(source.read_region(index, _whole(shape)), expected)
            region = (slice(1, 2), slice(10, 70), slice(5, shape[2]))
            _assert_same(source.read_region(index, region), expected[region])


# --- metadata ------------------------------------------------------------------------------------------


def test_ome_physical_sizes_and_channels(cases: dict[str, Case]) -> None:
    with _open(cases["ome_physical"]) as source:
        assert source.info.physical_sizes == {
            "x": PhysicalSize(0.25, "micrometer"),
            "y": PhysicalSize(0.3, "micrometer"),  # OME's default unit
            "z": PhysicalSize(150.0, "nanometer"),
            "t": PhysicalSize(2.5, "minute"),
        }
        assert source.info.channels == [Channel("DAPI", "FF0000"), Channel("GFP", "00FF00")]


def test_imagej_calibration(cases: dict[str, Case]) -> None:
    with _open(cases["imagej_hyperstack"]) as source:
        sizes = source.info.physical_sizes
        assert sizes["x"] == PhysicalSize(pytest.approx(0.4), "micrometer")
        assert sizes["y"] == PhysicalSize(pytest.approx(0.4), "micrometer")
        assert sizes["z"] == PhysicalSize(2.5, "micrometer")
        assert sizes["t"] == PhysicalSize(0.5, "second")


def test_imagej_labels_and_luts_name_and_color_channels(cases: dict[str, Case]) -> None:
    with _open(cases["imagej_labelled_channels"]) as source:
        assert source.info.channels == [Channel("mCherry", "FF0000"), Channel("Cy5", "FF00FF")]


def test_rgb_samples_are_named_channels(cases: dict[str, Case]) -> None:
    with _open(cases["rgba_interleaved_tiled"]) as source:
        assert [channel.color for channel in source.info.channels] == ["FF0000", "00FF00", "0000FF", None]


def test_ome_rgb_channels_expand_per_sample(cases: dict[str, Case]) -> None:
    with _open(cases["ome_rgb_channels"]) as source:
        assert len(source.info.channels) == 6
        assert [channel.color for channel in source.info.channels[:3]] == ["FF0000", "00FF00", "0000FF"]


def test_uncalibrated_files_have_no_physical_sizes(cases: dict[str, Case]) -> None:
    for name in ("uint8_strips_raw", "zstack_generic_pages", "imagej_rgb"):
        with _open(cases[name]) as source:
            assert source.info.physical_sizes == {}, name


def test_metric_resolution_becomes_micrometers(tmp_path: Path) -> None:
    path = tmp_path / "centimeter.tif"
    tifffile.imwrite(
        path, np.zeros((10, 12), np.uint8), resolution=(20000, 10000), resolutionunit="CENTIMETER"
    )
    with TiffSource(str(path)) as source:
        assert source.info.physical_sizes == {
            "x": PhysicalSize(pytest.approx(0.5), "micrometer"),
            "y": PhysicalSize(pytest.approx(1.0), "micrometer"),
        }


def test_sizes_in_pixels_or_unknown_units_are_dropped(tmp_path: Path) -> None:
    path = tmp_path / "pixel_units.ome.tif"
    metadata = {"axes": "ZYX", "PhysicalSizeX": 1.0, "PhysicalSizeXUnit": "pixel", "PhysicalSizeY": 0.5}
    metadata |= {"PhysicalSizeZ": 2.0, "PhysicalSizeZUnit": "reference frame"}
    tifffile.imwrite(path, np.zeros((2, 10, 12), np.uint8), metadata=metadata)
    with TiffSource(str(path)) as source:
        assert source.info.physical_sizes == {"y": PhysicalSize(0.5, "micrometer")}


def test_inch_resolution_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "dpi.tif"
    tifffile.imwrite(path, np.zeros((10, 12), np.uint8), resolution=(300, 300), resolutionunit="INCH")
    with TiffSource(str(path)) as source:
        assert source.info.physical_sizes == {}


# --- axis mapping --------------------------------------------------------------------------------------


def test_sequence_axis_goes_to_t_when_z_exists(tmp_path: Path) -> None:
    path = tmp_path / "qzyx.tif"
    data = np.arange(2 * 3 * 4 * 5, dtype=np.uint16).reshape(2, 3, 4, 5)
    tifffile.imwrite(path, data, metadata={"axes": "QZYX"}, photometric="minisblack")
    with TiffSource(str(path)) as source:
        assert source.info.axes == "tzyx"
        _assert_same(source.read_region(0, _whole((2, 3, 4, 5))), tifffile.imread(path))


def test_too_many_axes_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "six.tif"
    tifffile.imwrite(path, np.zeros((2, 2, 2, 2, 4, 5), np.uint8), metadata={"axes": "QTCZYX"})
    with pytest.raises(SourceError, match=r"^cannot map TIFF axes QTCZYX to OME-NGFF axes") as error:
        TiffSource(str(path))
    assert "\n" not in str(error.value)


def test_bad_series_index_names_the_series_count(cases: dict[str, Case]) -> None:
    with pytest.raises(SourceError, match=r"series 2 does not exist: the file has 2 series \(series 0-1\)"):
        TiffSource(str(cases["multi_series"].path), 2)
    with pytest.raises(SourceError, match=r"the file has 1 series \(only series 0\)"):
        TiffSource(str(cases["uint8_strips_raw"].path), -1)


# --- bad files -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("empty", r"^not a valid TIFF file \(file is empty\): "),
        ("random_bytes", r"^not a valid TIFF file \(no TIFF header\): "),
        ("png_named_tif", r"^not a valid TIFF file \(this is a PNG file\): "),
        ("truncated", r"^file is truncated: its image data ends at byte \d+ but the file has \d+ bytes: "),
        (
            "truncated_imagej",
            r"^file is truncated: its image data ends at byte \d+ but the file has \d+ bytes: ",
        ),
    ],
)
def test_bad_files_are_refused_with_a_clear_message(
    bad_files: dict[str, Path], name: str, message: str
) -> None:
    with pytest.raises(SourceError, match=message) as error:
        TiffSource(str(bad_files[name]))
    assert str(error.value).endswith(str(bad_files[name]))
    assert "\n" not in str(error.value)


def test_broken_structure_is_not_a_valid_tiff(tmp_path: Path) -> None:
    path = tmp_path / "bad_ifd.tif"
    path.write_bytes(b"II*\x00" + (10**9).to_bytes(4, "little") + bytes(64))  # first IFD beyond the end
    with pytest.raises(SourceError, match=r"^not a valid TIFF file \(.+\): "):
        TiffSource(str(path))


def test_unsupported_compression_is_reported_at_open(tmp_path: Path) -> None:
    path = tmp_path / "jbig.tif"
    tifffile.imwrite(path, np.zeros((20, 30), np.uint8))
    with tifffile.TiffFile(path) as tiff:
        value_offset = tiff.pages[0].tags["Compression"].valueoffset
    with path.open("r+b") as handle:  # relabel the pixels as JBIG, a codec tifffile cannot decode
        handle.seek(value_offset)
        handle.write((34661).to_bytes(2, "little"))
    with pytest.raises(SourceError, match=r"^cannot decode JBIG compression: tifffile does not support it: "):
        TiffSource(str(path))


_WITHOUT_IMAGECODECS = """
import sys
sys.modules["imagecodecs"] = None  # makes "import imagecodecs" fail, as if it were not installed
from zarrfs.errors import SourceError
from zarrfs.sources.tiff import TiffSource
for path in sys.argv[1:]:
    try:
        with TiffSource(path) as source:
            source.read_region(0, tuple(slice(0, size) for size in source.info.levels[0].shape))
        print("ok")
    except SourceError as error:
        print(error)
"""


def test_missing_imagecodecs_is_reported_at_open(bad_files: dict[str, Path], cases: dict[str, Case]) -> None:
    deflate = cases["uint16_tiled_zlib"].path  # tifffile falls back to Python's zlib for deflate
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            _WITHOUT_IMAGECODECS,
            str(bad_files["needs_imagecodecs_lzw"]),
            str(bad_files["needs_imagecodecs_zstd"]),
            str(deflate),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    advice = "install imagecodecs (pip install imagecodecs)"
    assert result.stdout.splitlines() == [
        f"cannot decode LZW compression: {advice}: {bad_files['needs_imagecodecs_lzw']}",
        # tifffile's pure-Python stand-in for zstd needs Python 3.14: it only fails when called
        f"cannot decode ZSTD compression: {advice}: {bad_files['needs_imagecodecs_zstd']}",
        "ok",
    ]


# --- behaviour under load ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["single_big_strip", "uint16_tiled_zlib", "ome_5d_xyczt", "imagej_rgb"])
def test_concurrent_reads_are_correct(cases: dict[str, Case], name: str) -> None:
    case = cases[name]
    failures: list[str] = []
    with _open(case) as source:
        level = source.info.levels[0]
        regions = _regions(name, level.shape, level.storage_unit, count=40)
        start = threading.Barrier(8)

        def worker(offset: int) -> None:
            start.wait()
            for region in regions[offset:] + regions[:offset]:
                if source.read_region(0, region).tobytes() != case.expected[region].tobytes():
                    failures.append(f"{region}")

        threads = [threading.Thread(target=worker, args=(offset * 5,)) for offset in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []


def test_huge_strip_is_decoded_once_for_many_chunks(cases: dict[str, Case]) -> None:
    case = cases["single_big_strip"]
    with _open(case) as source:
        level_reader = source._levels[0]
        decode = level_reader.decode
        calls = []

        def counting_decode(*args: object, **kwargs: object) -> object:
            calls.append(args[1])
            return decode(*args, **kwargs)

        level_reader.decode = counting_decode
        for y in range(0, 700, 100):
            for x in range(0, 530, 128):
                region = (slice(y, min(y + 100, 700)), slice(x, min(x + 128, 530)))
                _assert_same(source.read_region(0, region), case.expected[region])
        assert calls == [0]


def _bytes_read_by_this_process() -> int:
    """The kernel's count of bytes this process got from read-type calls (read, pread, readv, preadv,
    sendfile, ...), whichever library made them."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def test_opening_reads_no_pixel_data(
    cases: dict[str, Case], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opening reads metadata only, watched every way a file can be read: the os calls that read (and mmap,
    which reads without a call) on every case; and on images of megabytes of pixels the bytes the kernel
    counts as read by this process, which no reader escapes (tifffile's buffered file reads included)."""
    import mmap

    calls: list[str] = []
    for name in ("pread", "preadv", "read", "readv"):
        real = getattr(os, name)
        monkeypatch.setattr(os, name, lambda *args, real=real, name=name: calls.append(name) or real(*args))
    real_mmap = mmap.mmap
    monkeypatch.setattr(
        mmap, "mmap", lambda *args, **kwargs: calls.append("mmap") or real_mmap(*args, **kwargs)
    )
    for case in cases.values():
        _open(case).close()
    assert calls == []
    monkeypatch.undo()

    rng = np.random.default_rng(7)
    big = {
        "tiled.tif": (
            rng.integers(0, 2**16, (2048, 2048), dtype=np.uint16),
            {"tile": (256, 256), "compression": "zlib"},
        ),
        "contiguous.tif": (
            rng.integers(0, 2**16, (16, 512, 512), dtype=np.uint16),
            {"photometric": "minisblack"},
        ),
        "strips.tif": (
            rng.integers(0, 2**16, (8, 512, 1024), dtype=np.uint16),
            {"rowsperstrip": 16, "photometric": "minisblack"},
        ),
    }
    for name, (image, options) in big.items():
        tifffile.imwrite(tmp_path / name, image, **options)
    for name in big:
        TiffSource(str(tmp_path / name)).close()  # first opens import and cache what later opens need
    for name in big:
        path = tmp_path / name
        with tifffile.TiffFile(path) as tif:
            pixel_bytes = sum(sum(page.databytecounts) for page in tif.pages)
        assert pixel_bytes >= 8 * 2**20
        before = _bytes_read_by_this_process()
        source = TiffSource(str(path))
        read = _bytes_read_by_this_process() - before
        try:
            assert str(path) not in Path("/proc/self/maps").read_text()  # nothing of it mapped
        finally:
            source.close()
        assert read < 256 * 2**10, f"{name}: opening read {read} bytes ({pixel_bytes} bytes of pixels)"


def test_sparse_50_gb_bigtiff_opens_fast(tmp_path: Path) -> None:
    path = tmp_path / "sparse.tif"
    # Shape-only writing seeks over the pixel data: a 54 GB file that occupies a few kilobytes.
    tifffile.imwrite(path, shape=(200, 16384, 16384), dtype=np.uint8, bigtiff=True, metadata=None)
    assert path.stat().st_size >= 50 * 10**9
    started = time.perf_counter()
    with TiffSource(str(path)) as source:
        elapsed = time.perf_counter() - started
        assert source.info.axes == "zyx"
        assert source.info.levels[0].shape == (200, 16384, 16384)
        chunk = source.read_region(0, (slice(199, 200), slice(16000, 16384), slice(0, 512)))
    assert elapsed < 1.0
    assert not chunk.any()


def test_huge_sparse_tiled_image_opens_fast(tmp_path: Path) -> None:
    path = tmp_path / "sparse_tiled.tif"
    tiles = (163840 // 1024) ** 2
    first = np.full((1024, 1024), 7, np.uint16)
    tifffile.imwrite(
        path, iter([first, *[None] * (tiles - 1)]), shape=(163840, 163840), dtype=np.uint16, tile=(1024, 1024)
    )
    started = time.perf_counter()
    with TiffSource(str(path)) as source:
        elapsed = time.perf_counter() - started
        chunk = source.read_region(0, (slice(1000, 1050), slice(1000, 1050)))
    assert elapsed < 1.0
    assert (chunk[:24, :24] == 7).all()
    assert not chunk[24:, 24:].any()


def test_source_is_never_written(cases: dict[str, Case]) -> None:
    case = cases["imagej_single_ifd"]
    before = hashlib.sha256(case.path.read_bytes()).hexdigest()
    with _open(case) as source:
        source.read_region(0, _whole(source.info.levels[0].shape))
    assert hashlib.sha256(case.path.read_bytes()).hexdigest() == before


def test_read_after_close_fails(cases: dict[str, Case]) -> None:
    source = _open(cases["uint16_tiled_zlib"])
    source.close()
    source.close()  # closing twice is harmless
    with pytest.raises(SourceError, match=r"^source is closed: "):
        source.read_region(0, (slice(0, 10), slice(0, 10)))


def test_corrupt_tile_is_reported_with_its_index(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.tif"
    image = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
    tifffile.imwrite(path, image, tile=(32, 32), compression="zlib")
    with tifffile.TiffFile(path) as tiff:
        offset = tiff.pages[0].dataoffsets[3]
    with path.open("r+b") as handle:
        handle.seek(offset)
        handle.write(b"garbage!")
    with TiffSource(str(path)) as source:
        _assert_same(source.read_region(0, (slice(0, 32), slice(0, 32))), image[:32, :32])
        with pytest.raises(SourceError, match=r"cannot decode tile 3 of page 0 \(.+\): "):
            source.read_region(0, (slice(32, 64), slice(32, 64)))


# --- positional reads ----------------------------------------------------------------------------------


@pytest.fixture
def noise_file(tmp_path: Path) -> tuple[Path, bytes]:
    path = tmp_path / "noise.bin"
    data = np.random.default_rng(7).integers(0, 256, 3000 * 200, dtype=np.uint8).tobytes()
    path.write_bytes(data)
    return path, data


@pytest.mark.parametrize(
    ("offset", "row_stride", "rows", "length"),
    [
        (0, 200, 3000, 200),  # one contiguous run
        (13, 200, 1, 150),  # a single row
        (5, 200, 2900, 120),  # gaps read into scratch: more buffers than one preadv call takes
        (7, 200, 40, 9),  # a narrow window of wide rows: row by row
    ],
)
def test_pixel_file_reads_rows_into_place(
    noise_file: tuple[Path, bytes], offset: int, row_stride: int, rows: int, length: int
) -> None:
    path, data = noise_file
    source = np.frombuffer(data, np.uint8)
    expected = np.stack([source[offset + row * row_stride :][:length] for row in range(rows)])
    file = PixelFile(str(path))
    try:
        assert file.read_window(offset, row_stride, rows, length).tobytes() == expected.tobytes()
    finally:
        file.close()


def test_pixel_file_completes_short_reads(
    noise_file: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """preadv may fill fewer bytes than asked (huge requests, signals): the rest is read, in place."""
    path, data = noise_file
    real_preadv = os.preadv

    def short_preadv(fd: int, buffers: list[memoryview], offset: int) -> int:
        return real_preadv(fd, [buffers[0][:7]], offset)

    monkeypatch.setattr(pixelfile.os, "preadv", short_preadv)
    file = PixelFile(str(path))
    try:
        into = [memoryview(bytearray(n)) for n in (20, 3, 0, 31)]
        file.read_into(into, 11)
        assert b"".join(bytes(view) for view in into) == data[11:65]
    finally:
        file.close()


def test_pixel_file_reports_truncation(noise_file: tuple[Path, bytes]) -> None:
    path, data = noise_file
    file = PixelFile(str(path))
    try:
        # 200 + 100 + 200 + 100 + 200 bytes from len - 500 on (gaps read with the rows); the file's real size
        start, size = len(data) - 500, len(data)
        expected = rf"^file is truncated: 800 bytes from byte {start} on are needed, but the file has {size} "
        with pytest.raises(SourceError, match=expected):
            file.read_window(len(data) - 500, 300, 3, 200)
    finally:
        file.close()


@pytest.mark.parametrize("byteorder", ["<", ">"])
def test_uncompressed_windows_of_many_rows(tmp_path: Path, byteorder: str) -> None:
    """Rows read straight into the output (and byte-swapped there) for wide, gapped and narrow windows."""
    path = tmp_path / "tall.tif"
    image = np.random.default_rng(3).integers(0, 2**16, (1300, 300), dtype=np.uint16)
    tifffile.imwrite(path, image, byteorder=byteorder)
    with TiffSource(str(path)) as source:
        for columns in (slice(0, 300), slice(10, 200), slice(5, 20), slice(299, 300)):
            region = (slice(3, 1297), columns)
            _assert_same(source.read_region(0, region), image[region])


# --- headers and units ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header", [b"II*\x00\x08\x00\x00\x00", b"MM\x00*\x00\x00\x00\x08", b"II+\x00\x08\x00\x00\x00"]
)
def test_tiff_headers_are_recognised(header: bytes) -> None:
    assert is_tiff_header(header)
    assert is_tiff_header(b"MM\x00+\x00\x08\x00\x00")


@pytest.mark.parametrize("header", [b"", b"II", b"\x89PNG\r\n\x1a\n", b"II*\x01", b"MM*\x00"])
def test_other_headers_are_not_tiff(header: bytes) -> None:
    assert not is_tiff_header(header)


@pytest.mark.parametrize(
    ("unit", "kind", "name"),
    [
        ("µm", "space", "micrometer"),
        ("\u03bcm", "space", "micrometer"),  # Greek mu
        ("\\u00B5m", "space", "micrometer"),  # as ImageJ escapes it
        ("um", "space", "micrometer"),
        ("micron", "space", "micrometer"),
        ("Micrometres", "space", "micrometer"),
        ("nm", "space", "nanometer"),
        ("mm", "space", "millimeter"),
        ("Mm", "space", "megameter"),
        ("cm", "space", "centimeter"),
        ("m", "space", "meter"),
        ("Å", "space", "angstrom"),
        ("in", "space", "inch"),
        ("s", "time", "second"),
        ("sec", "time", "second"),
        ("ms", "time", "millisecond"),
        ("µs", "time", "microsecond"),
        ("ns", "time", "nanosecond"),
        ("min", "time", "minute"),
        ("h", "time", "hour"),
        ("d", "time", "day"),
        ("seconds", "time", "second"),
        ("pixel", "space", None),
        ("pixels", "space", None),
        ("reference frame", "space", None),
        ("dam", "space", None),  # valid SI, but not in NGFF's list
        ("furlong", "space", None),
        ("s", "space", None),
        ("µm", "time", None),
        ("", "space", None),
        (None, "space", None),
    ],
)
def test_udunits_name(unit: str | None, kind: str, name: str | None) -> None:
    assert udunits_name(unit, kind) == name  # type: ignore[arg-type]
