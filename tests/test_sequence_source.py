"""File sequences (issue 12, item 1): many files served as one image, checked against np.stack of tifffile's
reading of each file, in-process (the conformance suite) and through real FUSE mounts (zarr-python,
tensorstore, ome-zarr-models)."""

from __future__ import annotations

import errno
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
import pyvips
import tifffile
from mounting import mounted, zarrfs

from zarrfs.errors import SourceError
from zarrfs.sources import Location, open_source
from zarrfs.sources.sequence import SequenceSource
from zarrfs.sources.tiff import TiffReader
from zarrfs.testing import SourceCase, SourceConformance

RNG = np.random.default_rng(12)


def _write(path: Path, data: np.ndarray, **kwargs: object) -> Path:
    tifffile.imwrite(path, data, **kwargs)
    return path


def _pyramid(path: Path, data: np.ndarray) -> Path:
    """A tiled file with two stored reduced levels in SubIFDs, as OME-TIFF writers store them."""
    with tifffile.TiffWriter(path) as tiff:
        options = {"tile": (32, 32), "compression": "zlib"}
        tiff.write(data, subifds=2, **options)
        tiff.write(data[::2, ::2], subfiletype=1, **options)
        tiff.write(data[::4, ::4], subfiletype=1, **options)
    return path


def _vips(path: Path, data: np.ndarray) -> Path:
    """A tiled pyramidal TIFF as libvips writes it (reduced levels as further pages)."""
    image = pyvips.Image.new_from_array(data)
    image.tiffsave(str(path), tile=True, tile_width=64, tile_height=64, compression="deflate", pyramid=True)
    return path


def _levels(paths: Sequence[Path], axis: int = 0) -> list[np.ndarray]:
    """Every stored level as tifffile reads it, stacked: the independent reference."""
    with tifffile.TiffFile(paths[0]) as tiff:
        count = len(tiff.series[0].levels)
    stacked = []
    for level in range(count):
        planes = []
        for path in paths:
            with tifffile.TiffFile(path) as tiff:
                planes.append(tiff.series[0].levels[level].asarray())
        stacked.append(np.stack(planes, axis=axis))
    return stacked


def _grey(shape: tuple[int, ...], dtype: type = np.uint16) -> np.ndarray:
    return RNG.integers(0, 4000, shape).astype(dtype)


def _case_tiled(directory: Path) -> SourceCase:
    # Written in an order and with numbers that a plain sort would misplace (slice_10 before slice_2).
    numbers = [20, 1, 10, 3, 2, 11]
    paths = {n: _write(directory / f"slice_{n}.tif", _grey((70, 90)), tile=(32, 32), compression="zlib")
             for n in numbers}  # fmt: skip
    ordered = [paths[n] for n in sorted(numbers)]
    reference = np.stack([tifffile.imread(path) for path in ordered])
    pattern = str(directory / "slice_*.tif")
    return SourceCase(lambda: open_source(pattern), [reference], ordered)


def _case_pyramid(directory: Path) -> SourceCase:
    paths = [_pyramid(directory / f"p{n}.tif", _grey((128, 96))) for n in range(3)]
    return SourceCase(lambda: open_source([str(path) for path in paths]), _levels(paths), paths)


def _case_vips(directory: Path) -> SourceCase:
    paths = [_vips(directory / f"t{n}.tif", _grey((150, 130))) for n in range(4)]
    return SourceCase(
        lambda: open_source([str(path) for path in paths], {"sequence_axis": "t"}), _levels(paths), paths
    )


def _case_rgb(directory: Path) -> SourceCase:
    paths = [
        _write(directory / f"rgb{n}.tif", _grey((40, 50, 3), np.uint8), photometric="rgb") for n in range(3)
    ]
    reference = np.moveaxis(np.stack([tifffile.imread(path) for path in paths]), -1, 0)  # z,y,x,c -> c,z,y,x
    return SourceCase(lambda: open_source(str(directory / "rgb*.tif")), [reference], paths)


def _case_gaps(directory: Path) -> SourceCase:
    planes = {2: _grey((33, 47)), 5: _grey((33, 47)), 6: _grey((33, 47))}
    paths = [_write(directory / f"img_{n:03d}.tif", data) for n, data in planes.items()]
    reference = np.stack([planes.get(n, np.zeros((33, 47), np.uint16)) for n in range(2, 7)])
    options = {"sequence_pattern": r"img_(?P<index>\d+)"}
    return SourceCase(lambda: open_source(str(directory / "img_*.tif"), options), [reference], paths)


def _case_list_along_c(directory: Path) -> SourceCase:
    paths = [_write(directory / f"ch{n}.tif", _grey((20, 30), np.float32)) for n in range(3)]
    listed = [paths[2], paths[0], paths[1]]
    (directory / "channels.txt").write_text("".join(f"{path.name}\n" for path in listed))
    location = Location.listed(directory / "channels.txt")  # the list is read here, not among the images
    reference = np.stack([tifffile.imread(path) for path in listed])
    return SourceCase(lambda: open_source(location, {"sequence_axis": "c"}), [reference], paths)


CASES: dict[str, Callable[[Path], SourceCase]] = {
    "tiled": _case_tiled,
    "pyramid": _case_pyramid,
    "vips": _case_vips,
    "rgb": _case_rgb,
    "gaps": _case_gaps,
    "list_along_c": _case_list_along_c,
}


@pytest.fixture(scope="module")
def case_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sequences")


class TestSequenceSource(SourceConformance):
    @pytest.fixture(params=sorted(CASES))
    def case(self, request: pytest.FixtureRequest, case_dir: Path) -> SourceCase:
        directory = case_dir / request.param
        directory.mkdir(exist_ok=True)
        return CASES[request.param](directory)


def test_sequence_info_axes_channels_and_missing_indices(case_dir: Path) -> None:
    directory = case_dir / "info"
    directory.mkdir()
    for n in (1, 4, 5, 9):
        _write(directory / f"s{n}.tif", _grey((8, 8)), resolution=(2.0, 2.0), resolutionunit="CENTIMETER")
    with open_source(str(directory / "s*.tif"), {"sequence_pattern": r"s(?P<index>\d+)"}) as source:
        assert source.info.axes == "zyx" and source.info.levels[0].shape == (9, 8, 8)
        assert source.info.levels[0].storage_unit[0] == 1
        assert source.info.physical_sizes["x"].value == pytest.approx(5000.0)  # 2 px/cm, from the first file
        assert "missing indices 2-3, 6-8" in source.info.description
        assert f"first {directory / 's1.tif'}, last {directory / 's9.tif'}" in source.info.description
    with open_source(str(directory / "s*.tif"), {"sequence_axis": "c"}) as source:
        assert source.info.axes == "cyx"
        assert [channel.name for channel in source.info.channels] == ["s1.tif", "s4.tif", "s5.tif", "s9.tif"]
    result = zarrfs(
        "info", directory / "s*.tif", "--sequence-pattern", r"s(?P<index>\d+)", "--pixel-size", "z=20"
    )
    assert result.returncode == 0, result.stderr
    assert "sequence of 4 TIFF files along z" in result.stdout and "missing indices 2-3, 6-8" in result.stdout
    assert "z 20 micrometer" in result.stdout


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["{d}/none_*.tif"], "no files match {d}/none_*.tif"),
        (
            ["--sequence-list", "{d}/missing.txt"],
            "sequence list {d}/missing.txt line 2: file not found: {d}/gone.tif",
        ),
        (["{d}/a*.tif", "--sequence-pattern", r"a\d+"], "has no group named index"),
        (
            ["{d}/a*.tif", "--sequence-pattern", r"(?P<index>\d)"],
            "files {d}/a1.tif and {d}/a10.tif both have index 1",
        ),
        (
            ["{d}/a*.tif", "--sequence-pattern", r"b(?P<index>\d+)"],
            "file {d}/a1.tif does not match --sequence-pattern",
        ),
        (
            ["{d}/z*.tif", "--sequence-axis", "z"],
            "--sequence-axis z: the files already have a z axis (axes zyx)",
        ),
        (["{d}/a1.tif", "--sequence-axis", "t"], "--sequence-axis does not apply to TIFF sources"),
    ],
)
def test_bad_sequences_are_one_line_errors(tmp_path: Path, arguments: list[str], message: str) -> None:
    for n in (1, 10):
        _write(tmp_path / f"a{n}.tif", _grey((8, 8)))
        _write(tmp_path / f"z{n}.tif", _grey((2, 8, 8)), metadata={"axes": "ZYX"})
    (tmp_path / "missing.txt").write_text("a1.tif\ngone.tif\n")
    for command in ("info", "mount"):
        extra = [tmp_path / "mnt"] if command == "mount" else []
        (tmp_path / "mnt").mkdir(exist_ok=True)
        result = zarrfs(command, *[part.format(d=tmp_path) for part in arguments], *extra)
        assert result.returncode == 1, result.stdout
        assert result.stderr.startswith("zarrfs: error: ") and result.stderr.count("\n") == 1, result.stderr
        assert message.format(d=tmp_path) in result.stderr


def _mixed(directory: Path) -> list[Path]:
    """Five files, of which the second has another shape, the fourth another dtype and the fifth no stored
    levels where the first has them."""
    paths = [_pyramid(directory / f"m{n}.tif", _grey((64, 64))) for n in range(5)]
    _pyramid(paths[1], _grey((64, 48)))
    _pyramid(paths[3], _grey((64, 64), np.int32))
    _write(paths[4], _grey((64, 64)), tile=(32, 32))
    return paths


def test_files_unlike_the_first_fail_their_planes_with_one_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    paths = _mixed(tmp_path)
    reference = [tifffile.imread(path) for path in paths]
    caplog.set_level(logging.ERROR)
    with open_source([str(path) for path in paths]) as source:
        whole = (slice(0, 64), slice(0, 64))
        for _ in range(2):  # the second reads find the files known bad: no new log line
            for plane in (0, 2):
                np.testing.assert_array_equal(
                    source.read_region(0, (slice(plane, plane + 1), *whole))[0], reference[plane]
                )
            for plane, why in (
                (1, r"has shape \(64, 48\), the first file \(64, 64\)"),
                (3, "has dtype int32"),
                (4, "has stored levels of shapes"),
            ):
                with pytest.raises(SourceError, match=why):
                    source.read_region(0, (slice(plane, plane + 1), *whole))
                with pytest.raises(SourceError, match=why):
                    source.read_region(1, (slice(plane, plane + 1), slice(0, 8), slice(0, 8)))
        logged = [record.getMessage() for record in caplog.records]
        for bad in (paths[1], paths[3], paths[4]):
            assert sum(str(bad) in line for line in logged) == 1, logged
        assert (
            f"sequence file {paths[3]} has dtype int32, the first file uint16: its planes are not served"
            in logged
        )
    result = zarrfs("info", "--check", tmp_path / "m*.tif")
    assert result.returncode == 1
    problems = [line for line in result.stdout.splitlines() if line.startswith("  sequence file")]
    assert [line.split()[2] for line in problems] == [str(paths[1]), str(paths[3]), str(paths[4])]
    assert "check:     3 of 5 files cannot be served" in result.stdout
    good = zarrfs("info", "--check", tmp_path / "m[02].tif")
    assert good.returncode == 0 and "check:     0 of 2 files" in good.stdout


def test_mount_reads_one_file_and_opens_files_lazily_within_a_bound(tmp_path: Path) -> None:
    paths = [_write(tmp_path / f"f{n}.tif", np.full((16, 16), n, np.uint16)) for n in range(2000)]
    opened: list[str] = []
    real_open = TiffReader.open

    def counting_open(reader: TiffReader, location: Location, *args: object) -> object:
        opened.append(location.path)
        return real_open(reader, location, *args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TiffReader, "open", counting_open)
        started = time.monotonic()
        source = open_source(str(tmp_path / "f*.tif"))
        took = time.monotonic() - started
        try:
            assert opened == [str(paths[0])], "opening read more than the first file"
            assert took < 5, f"opening 2,000 files took {took:.1f} s"
            assert isinstance(source, SequenceSource)
            before = len(os.listdir("/proc/self/fd"))
            pixels = source.read_region(0, (slice(0, 2000), slice(0, 16), slice(0, 1)))
            assert source.open_files() <= 64
            assert len(os.listdir("/proc/self/fd")) <= before + 2 * 64
            np.testing.assert_array_equal(pixels[:, 3, 0], np.arange(2000))
        finally:
            source.close()
    assert source.open_files() == 0
    # The real command line: `zarrfs mount` of the 2,000 files returns within a bound.
    mountpoint = tmp_path / "mnt"
    started = time.monotonic()
    with mounted(tmp_path / "f*.tif", mountpoint, "--ngff", "all"):
        took = time.monotonic() - started
        import zarr

        array = zarr.open_array(mountpoint / "0", mode="r", zarr_format=2)
        np.testing.assert_array_equal(array[1990:2000, 0, 0], np.arange(1990, 2000))
    assert took < 10, f"mounting 2,000 files took {took:.1f} s"


def _chunk_error(path: Path) -> int | None:
    try:
        path.read_bytes()
    except OSError as error:
        return error.errno
    return None


def test_mount_serves_equal_values_to_zarr_and_tensorstore(tmp_path: Path) -> None:
    import tensorstore as ts
    import zarr
    from ome_zarr_models.v04 import Image as ImageV04
    from ome_zarr_models.v05 import Image as ImageV05

    for name, write in (("tifffile", _pyramid), ("vips", _vips)):
        directory = tmp_path / name
        directory.mkdir()
        paths = [write(directory / f"sec_{n}.tif", _grey((150, 140))) for n in (9, 10, 11, 100)]
        reference = np.stack([tifffile.imread(path) for path in paths])
        with mounted(
            directory / "sec_*.tif", tmp_path / f"mnt_{name}", "--ngff", "all", "--pixel-size", "z=20"
        ) as mnt:
            for version in (2, 3):
                group = zarr.open_group(mnt, mode="r", zarr_format=version)
                np.testing.assert_array_equal(group["0"][...], reference)
            for driver, prefix in (("zarr", ""), ("zarr3", "")):
                spec = {"driver": driver, "kvstore": {"driver": "file", "path": f"{mnt}/{prefix}0"}}
                np.testing.assert_array_equal(ts.open(spec).result().read().result(), reference)
            attributes = json.loads((mnt / ".zattrs").read_text())
            scale = attributes["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"]
            assert scale[0] == 20
            ImageV04.from_zarr(zarr.open_group(mnt, mode="r", zarr_format=2))
            ImageV05.from_zarr(zarr.open_group(mnt, mode="r", zarr_format=3))


def test_stored_tiles_pass_through_with_the_plane_index(tmp_path: Path) -> None:
    paths = [
        _write(tmp_path / f"q{n}.tif", _grey((64, 64)), tile=(32, 32), compression="zlib") for n in range(3)
    ]
    with mounted(
        tmp_path / "q*.tif", tmp_path / "mnt", "--chunks", "1,32,32", "--compressor", "zlib", "--ngff", "0.4"
    ) as mnt:
        with tifffile.TiffFile(paths[2]) as tiff:
            page = tiff.pages[0]
            offset, count = page.dataoffsets[3], page.databytecounts[3]  # tile (1, 1)
        with open(paths[2], "rb") as handle:
            handle.seek(offset)
            stored = handle.read(count)
        assert (mnt / "0" / "2" / "1" / "1").read_bytes() == stored


def test_a_file_that_vanishes_or_changes_fails_its_planes_only(tmp_path: Path) -> None:
    paths = [_write(tmp_path / f"v{n}.tif", _grey((64, 64))) for n in range(4)]
    mountpoint = tmp_path / "mnt"
    with mounted(tmp_path / "v*.tif", mountpoint, "--chunks", "1,32,32", "--ngff", "0.4"):
        chunk = mountpoint / "0"
        reference = tifffile.imread(paths[1])
        served = np.frombuffer((chunk / "1" / "0" / "0").read_bytes(), np.uint16).reshape(32, 32)
        np.testing.assert_array_equal(served, reference[:32, :32])  # file 1 is open now
        os.remove(paths[1])
        os.remove(paths[2])  # never opened
        _write(paths[3], _grey((64, 64)))  # rewritten: same shape and dtype, new pixels
        for plane in (1, 2, 3):
            for tile in ("0/1", "1/1"):
                assert _chunk_error(chunk / str(plane) / tile) == errno.EIO
        served = np.frombuffer((chunk / "0" / "1" / "1").read_bytes(), np.uint16).reshape(32, 32)
        np.testing.assert_array_equal(served, tifffile.imread(paths[0])[32:, 32:])
    log = (tmp_path / "zarrfs.log").read_text()
    for path, why in (
        (paths[1], "was deleted"),
        (paths[2], "was deleted"),
        (paths[3], "was modified (its modification time changed) since it was mounted"),
    ):
        lines = [
            line for line in log.splitlines() if f"sequence file {path} {why}" in line and "chunk" not in line
        ]
        assert len(lines) == 1, log


def test_open_store_takes_a_glob_or_a_list(tmp_path: Path) -> None:
    import zarr

    import zarrfs as package

    paths = [_write(tmp_path / f"k{n}.tif", _grey((20, 20))) for n in (1, 2, 12)]
    reference = np.stack([tifffile.imread(path) for path in paths])
    for source in (str(tmp_path / "k*.tif"), [str(path) for path in paths]):
        group = zarr.open_group(package.open_store(source, ngff="0.5"), mode="r", zarr_format=3)
        np.testing.assert_array_equal(group["0"][...], reference)
    group = zarr.open_group(
        package.open_store(str(tmp_path / "k*.tif"), sequence_axis="t", ngff="0.5"), mode="r", zarr_format=3
    )
    assert group.attrs["ome"]["multiscales"][0]["axes"][0]["name"] == "t"


def test_natural_order_compares_runs_of_digits_as_numbers(tmp_path: Path) -> None:
    # ² is a digit to str.isdigit but no decimal digit to re; ٣ is the Arabic-Indic 3.
    names = ["s10.tif", "s2.tif", "s1²2.tif", "s1.tif", "s1a.tif", "s٣.tif", "t0.tif"]
    for name in names:
        _write(tmp_path / name, _grey((4, 4)))
    with open_source(str(tmp_path / "*.tif")) as source:
        order = [os.path.basename(path) for path in source.files()]
    assert order == ["s1.tif", "s1a.tif", "s1²2.tif", "s2.tif", "s٣.tif", "s10.tif", "t0.tif"]


def test_a_list_file_mounts_in_its_order_and_no_file_of_it_may_be_the_log(tmp_path: Path) -> None:
    import zarr

    paths = [_write(tmp_path / f"l{n}.tif", _grey((24, 24))) for n in range(3)]
    (tmp_path / "list.txt").write_text("l2.tif\n\nl0.tif\nl1.tif\n")
    reference = np.stack([tifffile.imread(paths[n]) for n in (2, 0, 1)])
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    for log in (paths[1], tmp_path / "list.txt"):
        refused = zarrfs("mount", "--sequence-list", tmp_path / "list.txt", mountpoint, "--log-file", log)
        assert refused.returncode == 1 and f"log file {log} is the source image" in refused.stderr
    refused = zarrfs("mount", tmp_path / "l*.tif", mountpoint, "--log-file", paths[2])
    assert refused.returncode == 1 and f"log file {paths[2]} is the source image {paths[2]}" in refused.stderr
    assert all(path.stat().st_size > 0 and tifffile.imread(path).shape == (24, 24) for path in paths)
    log = tmp_path / "zarrfs.log"
    result = zarrfs("mount", "--sequence-list", tmp_path / "list.txt", mountpoint, "--log-file", log)
    assert result.returncode == 0, result.stderr
    try:
        served = zarr.open_array(mountpoint / "0", mode="r", zarr_format=2)[...]
        np.testing.assert_array_equal(served, reference)
    finally:
        assert zarrfs("unmount", mountpoint).returncode == 0
