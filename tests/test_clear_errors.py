"""Clear errors instead of failures or tracebacks (issue 9, items 8, 12, 13 for complex types, 16, 17): odd
option values, an unreadable pass-through tile, odd chunk keys, control characters in metadata and complex
images. Through the real command line and real mounts, with tifffile and numpy as oracles."""

from __future__ import annotations

import errno
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorstore as ts
import tifffile
import zarr
from mounting import force_unmount, is_mounted, mounted, require_fuse, zarrfs
from test_cli_errors import assert_clean_failure

import zarrfs as zarrfs_api
from zarrfs.errors import ZarrfsError

UNITS = ("B, KB, MB, GB, TB", "KiB, MiB, GiB, TiB")


@pytest.fixture(scope="module")
def small_tiff(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """128x128 uint16 in 64x64 tiles: a 2x2 chunk grid with ``--chunks 64,64``."""
    path = tmp_path_factory.mktemp("small") / "small.tif"
    tifffile.imwrite(path, np.arange(128 * 128, dtype=np.uint16).reshape(128, 128), tile=(64, 64))
    return path


# ----------------------------------------------------------------------------------------------------------
# Item 8: --timeout and --cache-size


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e308", "86401", "0", "0.001", "-1", "abc"])
def test_a_timeout_that_is_not_a_finite_number_of_seconds_up_to_a_day_is_refused(
    value: str, small_tiff: Path, tmp_path: Path
) -> None:
    require_fuse()
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    try:
        result = zarrfs("mount", small_tiff, mountpoint, f"--timeout={value}")
        assert_clean_failure(result, f"invalid --timeout {value!r}", "from 0.01 to 86400 (one day)")
        assert result.returncode == 1
        assert not is_mounted(mountpoint)
    finally:
        force_unmount(mountpoint)


def test_the_longest_timeout_mounts_and_serves(small_tiff: Path, tmp_path: Path) -> None:
    with mounted(small_tiff, tmp_path / "mnt", "--timeout", "86400", "--chunks", "64,64") as mnt:
        chunk = np.frombuffer((mnt / "0" / "1" / "1").read_bytes(), "<u2").reshape(64, 64)
    np.testing.assert_array_equal(chunk, tifffile.imread(small_tiff)[64:, 64:])


def _memory_bytes() -> int:
    with open("/proc/meminfo") as meminfo:
        total_kib = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal:"))
    return total_kib * 1024


@pytest.mark.parametrize(
    ("value", "bounds"),
    [
        ("99999999999999999999TiB", True),
        ("0.5", True),
        ("0", True),
        ("1023KiB", True),
        ("-1MiB", False),
        ("1e400", False),
        ("5XB", False),
        pytest.param("9" * 5000, False, id="5000-digits"),
        ("2x machine memory", True),
    ],
)
def test_a_cache_size_that_is_not_a_sensible_size_is_refused_with_the_units(
    value: str, bounds: bool, small_tiff: Path
) -> None:
    if value == "2x machine memory":
        value = f"{2 * _memory_bytes()}B"
    result = zarrfs("info", small_tiff, "--cache-size", value)
    assert_clean_failure(result, "invalid size", "for --cache-size", *UNITS)
    if bounds:
        assert "it must be from 1.0 MiB to " in result.stderr
        assert "(this machine's memory)" in result.stderr
    # The Python API raises the same message.
    with pytest.raises(ZarrfsError) as raised:
        zarrfs_api.open_store(small_tiff, cache_size=value)
    assert result.stderr.strip() == f"zarrfs: error: {raised.value}"


@pytest.mark.parametrize(
    "value", [0.5, 0, -(2**20), float("nan"), float("inf"), True, pytest.param(10**5000, id="10**5000")]
)
def test_a_cache_size_given_in_python_is_checked_alike(value: object, small_tiff: Path) -> None:
    with pytest.raises(ZarrfsError, match=r"^invalid size .* for --cache-size: .*KiB, MiB, GiB, TiB"):
        zarrfs_api.open_store(small_tiff, cache_size=value)


@pytest.mark.parametrize(
    ("value", "shown"),
    [("1MiB", "1.0 MiB"), ("1.5GiB", "1.5 GiB"), ("1.1GB", "1.0 GiB"), ("2000000B", "1.9 MiB")],
)
def test_sensible_cache_sizes_are_taken_exactly(value: str, shown: str, small_tiff: Path) -> None:
    result = zarrfs("info", small_tiff, "--cache-size", value)
    assert result.returncode == 0, result.stderr
    assert f"cache:     {shown}\n" in result.stdout
    store = zarrfs_api.open_store(small_tiff, cache_size=value)
    try:
        expected = {"1MiB": 2**20, "1.5GiB": 3 * 2**29, "1.1GB": 1_100_000_000, "2000000B": 2_000_000}[value]
        assert store.dataset.options.cache_bytes == expected
    finally:
        store.close()


def test_help_states_the_limits_of_timeout_and_cache_size() -> None:
    text = " ".join(zarrfs("mount", "--help").stdout.split())
    assert "0.01 to 86400 (one day); there is no unlimited setting" in text
    assert "from 1.0 MiB to this machine's memory" in text
    assert "KiB, MiB, GiB, TiB (powers of 1024)" in text


# ----------------------------------------------------------------------------------------------------------
# Item 12: a pass-through tile whose stored bytes lie past the end of the file


def _stack_with_a_tile_past_the_end(path: Path, beyond: int) -> tuple[np.ndarray, int]:
    """Three 128x128 uint16 pages in 64x64 uncompressed tiles; page 1's first tile offset points ``beyond``
    bytes past the end of the file (only the first and last pages are checked at open)."""
    data = np.arange(3 * 128 * 128, dtype=np.uint16).reshape(3, 128, 128)
    tifffile.imwrite(path, data, tile=(64, 64), photometric="minisblack", metadata={"axes": "ZYX"})
    size = path.stat().st_size
    with tifffile.TiffFile(path) as tif:
        table = tif.pages[1].tags["TileOffsets"]
        assert table.count == 4 and table.dtype == 4  # four LONG offsets, stored outside the IFD
        where = table.valueoffset
    with open(path, "r+b") as file:
        file.seek(where)
        file.write(struct.pack("<I", size + beyond))
    return data, size


@pytest.mark.parametrize("passthrough", ["auto", "off"])
def test_an_unreadable_stored_tile_gives_eio_and_one_log_line_with_the_right_figures(
    passthrough: str, tmp_path: Path
) -> None:
    source = tmp_path / "stack.tif"
    data, size = _stack_with_a_tile_past_the_end(source, beyond=1000)
    options = ("--chunks", "64,64", "--passthrough", passthrough, "--levels", "1", "--ngff", "all")
    described = zarrfs("info", source, *options)
    assert described.returncode == 0, described.stderr
    assert ("stored tiles passed through" in described.stdout) == (passthrough == "auto")
    log_path = tmp_path / "zarrfs.log"

    def lines_about_the_chunk() -> list[str]:
        return [line for line in log_path.read_text().splitlines() if "chunk (1, 0, 0)" in line]

    with mounted(source, tmp_path / "mnt", *options) as mnt:
        bad = mnt / "0" / "1" / "0" / "0"
        with pytest.raises(OSError) as raised:
            bad.read_bytes()
        assert raised.value.errno == errno.EIO
        # One line per request that failed: the open's lookup of a pass-through chunk; a decoded chunk's read,
        # which the kernel may send again after an error.
        logged = len(lines_about_the_chunk())
        assert logged == 1 if passthrough == "auto" else logged >= 1
        if passthrough == "auto":  # the size of a stored tile is known only once it is read
            with pytest.raises(OSError) as raised:
                os.stat(bad)
            assert raised.value.errno == errno.EIO
            listing = subprocess.run(
                ["ls", "-l", str(bad.parent)], capture_output=True, text=True, check=False
            )
            assert "Input/output error" in listing.stderr
        with pytest.raises(OSError) as raised:
            (mnt / "0" / "c" / "1" / "0" / "0").read_bytes()
        assert raised.value.errno == errno.EIO
        # Every other chunk, of that page and the others, still reads exactly.
        neighbour = np.frombuffer((mnt / "0" / "1" / "0" / "1").read_bytes(), "<u2").reshape(64, 64)
        np.testing.assert_array_equal(neighbour, data[1, :64, 64:])
        array = zarr.open_array(mnt / "0", mode="r", zarr_format=2)
        np.testing.assert_array_equal(array[0], data[0])
        np.testing.assert_array_equal(array[2], data[2])
        np.testing.assert_array_equal(array[1, 64:], data[1, 64:])
    log = log_path.read_text()
    assert "Traceback" not in log and "Uncaught" not in log
    failures = lines_about_the_chunk()
    assert len(failures) >= 2  # each failed access: one line
    for line in failures:
        assert " ERROR level 0 chunk (1, 0, 0): " in line
        needed = f"claims 8192 bytes, from byte {size + 1000} on, past the end of the file ({size} bytes)"
        # Passed through: the stored tile's read fails; decoded: the region's read of it.
        read = "stored tile read failed" if passthrough == "auto" else "source read failed"
        assert f"{read}: tile 0 of page 1 {needed}" in line


def test_an_unreadable_stored_tile_fails_only_its_chunk_in_process(tmp_path: Path) -> None:
    source = tmp_path / "stack.tif"
    data, size = _stack_with_a_tile_past_the_end(source, beyond=0)
    store = zarrfs_api.open_store(source, chunks="64,64", levels=1, ngff="all")
    try:
        assert store.dataset.layouts[0].arrays[0].native is not None  # the pass-through path
        array = zarr.open_array(store, path="0", mode="r", zarr_format=3)
        with pytest.raises(
            OSError,
            match=rf"claims 8192 bytes, from byte {size} on, past the end of the file \({size} bytes\)",
        ):
            array[1, :64, :64]
        np.testing.assert_array_equal(array[1, 64:, :], data[1, 64:, :])
        np.testing.assert_array_equal(array[1, :64, 64:], data[1, :64, 64:])
    finally:
        store.close()


# ----------------------------------------------------------------------------------------------------------
# Item 16: path components that look like numbers but are not chunk indices

ODD_KEYS = ["²", "¹", "٣", "１", "+1", " 1", "1 ", "01", "00", "1_000", "-1", "1e0", "0x1", "9" * 200, "2"]


def _odd_paths(key: str) -> list[str]:
    """Chunk keys of both layouts with ``key`` in the place of each index."""
    return [f"0/{key}/0", f"0/0/{key}", f"0/{key}", f"0/c/{key}/0", f"0/c/0/{key}", f"0/c/{key}"]


def test_odd_chunk_keys_are_missing_in_process(small_tiff: Path) -> None:
    store = zarrfs_api.open_store(small_tiff, chunks="64,64", levels=1, ngff="all")
    try:
        tree = store.dataset.tree
        for key in [*ODD_KEYS, "9" * 5000, "9" * 19, "9" * 20]:
            for path in _odd_paths(key):
                assert tree.stat(path) is None, path
                with pytest.raises(FileNotFoundError):
                    tree.read_file(path)
        array = zarr.open_array(store, path="0", mode="r", zarr_format=2)
        np.testing.assert_array_equal(array[...], tifffile.imread(small_tiff))
        assert tree.stat("0/1/1") is not None and tree.stat("0/c/1/1") is not None
    finally:
        store.close()


def test_odd_chunk_keys_are_enoent_through_the_mount(small_tiff: Path, tmp_path: Path) -> None:
    with mounted(small_tiff, tmp_path / "mnt", "--chunks", "64,64", "--levels", "1", "--ngff", "all") as mnt:
        for key in ODD_KEYS:
            for path in _odd_paths(key):
                with pytest.raises(FileNotFoundError):
                    os.stat(mnt / path)
                with pytest.raises(FileNotFoundError):
                    open(mnt / path, "rb").close()
        assert (mnt / "0" / "1" / "1").stat().st_size == 64 * 64 * 2
    log = (tmp_path / "zarrfs.log").read_text()
    assert "Traceback" not in log and "ERROR" not in log


# ----------------------------------------------------------------------------------------------------------
# Item 17: control characters in channel names and file names

# OME-XML (ASCII, XML 1.0) can hold these as character references; an escape (ESC) is not allowed in XML at
# all, but its 8-bit form CSI (U+009B) is, and the line separator U+2028 breaks lines in some terminals.
OME_NAMES = {
    "a&#10;b": r"a\nb",
    "x&#13;y&#9;z": r"x\ry\tz",
    "&#155;31mred": r"\x9b31mred",
    "l&#8232;s": r"l\u2028s",
}
# ImageJ labels are free text: ESC and its colour sequence included.
IMAGEJ_NAMES = {"\x1b[31mred": r"\x1b[31mred", "t\tab": r"t\tab", "n\nl": r"n\nl", "c\rr": r"c\rr"}


def _assert_printable_lines(text: str, count: int) -> list[str]:
    lines = text.splitlines()
    assert len(lines) == count, text
    for line in lines:
        assert line.isprintable(), repr(line)
    return lines


def _described_lines(path: Path | bytes) -> list[str]:
    result = subprocess.run([sys.executable, "-m", "zarrfs", "info", path], capture_output=True, check=False)
    assert result.returncode == 0, result.stderr
    # source, format, axes, physical, channels, codec, cache, "levels:", one level, padding, windows, a window
    # per channel (4), "layouts:", one layout of 2 lines
    lines = _assert_printable_lines(result.stdout.decode(), 18)
    assert lines[10].startswith("windows:") and lines[15] == "layouts:"
    return lines


def test_info_escapes_control_characters_of_ome_channel_names(tmp_path: Path) -> None:
    channels = "".join(
        f'<Channel ID="Channel:0:{i}" SamplesPerPixel="1" Name="{name}"/>' for i, name in enumerate(OME_NAMES)
    )
    ome = (
        '<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">'
        '<Image ID="Image:0" Name="img"><Pixels ID="Pixels:0" DimensionOrder="XYCZT" Type="uint8" '
        f'SizeX="16" SizeY="16" SizeC="4" SizeZ="1" SizeT="1">{channels}<TiffData IFD="0" PlaneCount="4"/>'
        "</Pixels></Image></OME>"
    )
    path = tmp_path / "names.ome.tif"
    tifffile.imwrite(
        path, np.zeros((4, 16, 16), np.uint8), photometric="minisblack", description=ome, metadata=None
    )
    lines = _described_lines(path)
    assert lines[4] == "channels:  " + ", ".join(OME_NAMES.values())
    assert [line.split(": ")[0] for line in lines[11:15]] == [f"  {name}" for name in OME_NAMES.values()]


def test_info_escapes_control_characters_of_imagej_labels_and_file_names(tmp_path: Path) -> None:
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(
        plain,
        np.zeros((4, 16, 16), np.uint8),
        imagej=True,
        metadata={"axes": "CYX", "Labels": list(IMAGEJ_NAMES)},
    )
    # A file name with an escape sequence, a newline and a byte that is not UTF-8.
    odd = os.path.join(os.fsencode(tmp_path), b"odd\x1b[2J\n\xff.tif")
    os.rename(plain, odd)
    lines = _described_lines(odd)
    assert lines[0] == f"source:    {tmp_path}/odd\\x1b[2J\\n\\xff.tif"
    assert lines[4] == "channels:  " + ", ".join(IMAGEJ_NAMES.values())
    assert [line.split(": ")[0] for line in lines[11:15]] == [f"  {name}" for name in IMAGEJ_NAMES.values()]


def test_an_error_about_a_file_name_with_a_newline_is_one_line(tmp_path: Path) -> None:
    odd = tmp_path / "not\na tiff\x1b[2J.tif"
    odd.write_bytes(b"plain text, not an image")
    result = zarrfs("info", odd)
    assert_clean_failure(result, "not a supported image format", "not\\na tiff\\x1b[2J.tif")


# ----------------------------------------------------------------------------------------------------------
# Item 13 (complex part): complex64 and complex128 images are served in both layouts


def _mean_of_2x2(pixels: np.ndarray) -> np.ndarray:
    height, width = (extent // 2 for extent in pixels.shape)  # even extents here
    wide = pixels.astype(np.complex128).reshape(height, 2, width, 2)
    return wide.mean(axis=(1, 3)).astype(pixels.dtype)


@pytest.mark.parametrize(
    ("dtype", "compression", "options"),
    [
        ("complex64", "zlib", ()),
        ("complex64", None, ("--chunks", "64,64")),  # the stored tiles passed through
        ("complex64", "zlib", ("--compressor", "blosc-zstd", "--ngff", "0.5", "--shards", "2")),
        ("complex128", None, ()),
    ],
)
def test_complex_images_read_equal_through_zarr_python_and_tensorstore(
    dtype: str, compression: str | None, options: tuple[str, ...], tmp_path: Path
) -> None:
    rng = np.random.default_rng(13)
    pixels = (rng.normal(size=(192, 128)) + 1j * rng.normal(size=(192, 128))).astype(dtype)
    source = tmp_path / "complex.tif"
    tifffile.imwrite(source, pixels, tile=(64, 64), compression=compression)
    expected = tifffile.imread(source)
    described = zarrfs("info", source, "--ngff", "all", *options)
    assert described.returncode == 0, described.stderr
    assert ("stored tiles passed through" in described.stdout) == ("--chunks" in options)
    with mounted(source, tmp_path / "mnt", "--levels", "2", "--ngff", "all", *options) as mnt:
        sharded = "--shards" in options
        if not sharded:
            zarray = json.loads((mnt / "0" / ".zarray").read_text())
            assert zarray["dtype"] == np.dtype(dtype).newbyteorder("<").str
            assert zarray["fill_value"] == [0.0, 0.0]
        zarr_json = json.loads((mnt / "0" / "zarr.json").read_text())
        assert (zarr_json["data_type"], zarr_json["fill_value"]) == (dtype, [0.0, 0.0])
        for zarr_format in (3,) if sharded else (2, 3):
            driver = {2: "zarr", 3: "zarr3"}[zarr_format]
            for level, reference in (("0", expected), ("1", _mean_of_2x2(expected))):
                by_zarr = zarr.open_array(mnt / level, mode="r", zarr_format=zarr_format)[...]
                spec = {"driver": driver, "kvstore": {"driver": "file", "path": str(mnt / level)}}
                by_tensorstore = ts.open(spec, read=True).result().read().result()
                assert by_zarr.dtype == by_tensorstore.dtype == np.dtype(dtype)
                np.testing.assert_array_equal(by_zarr, by_tensorstore)
                if level == "0":
                    np.testing.assert_array_equal(by_zarr, reference)
                else:  # the mean of four values: rounding may differ in the last place
                    last_place = 4 * np.finfo(dtype).eps * np.abs(expected).max()
                    np.testing.assert_allclose(by_zarr, reference, rtol=0, atol=last_place)
