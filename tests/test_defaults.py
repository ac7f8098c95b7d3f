"""Defaults a new user meets (issue 11): little padding in default chunks, placeholder resolutions taken as
unknown, one-line errors that say what to add, and --debug wherever an error line suggests it."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from mounting import require_tools, zarrfs
from tiff_cases import CASES, Case

from zarrfs.core import open_dataset
from zarrfs.core.options import serve_options

MARGIN = 1 / 16  # of each axis, beyond the source's own tile grid


@pytest.fixture(scope="module")
def case_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("defaults")


def _issue_example(directory: Path) -> Case:
    """The image of the issue: 600x515 with 128x128 tiles, which 512x512 chunks served 3.4 times over."""
    path = directory / "issue_example.tif"
    tifffile.imwrite(path, np.ones((600, 515), np.uint16), tile=(128, 128))
    return Case(path, 0, "yx", tifffile.imread(path))


def _source_units(keyframe: tifffile.TiffPage, axes: str) -> dict[str, int]:
    """The source's own grid by canonical axis, from the TIFF tags: tiles (with their depth) or strips."""
    if keyframe.is_tiled:
        units = {"z": keyframe.tiledepth, "y": keyframe.tilelength, "x": keyframe.tilewidth}
    else:
        units = {"y": min(keyframe.rowsperstrip, keyframe.imagelength), "x": keyframe.imagewidth}
    return {axis: units.get(axis, 1) for axis in axes}


def _served_ratio(zarray: dict[str, list[int]]) -> float:
    shape, chunks = zarray["shape"], zarray["chunks"]
    grid = [math.ceil(extent / chunk) for extent, chunk in zip(shape, chunks, strict=True)]
    return math.prod(grid) * math.prod(chunks) / math.prod(shape)


@pytest.mark.parametrize("name", [*CASES, "issue_example"])
def test_default_chunks_pad_little_more_than_the_source_tiles(name: str, case_dir: Path) -> None:
    """Per stored level: served bytes (full-size edge chunks) per pixel byte at most what the source's tile or
    strip grid pads, plus 1/16 of each axis; `zarrfs info` prints the ratio over all levels."""
    directory = case_dir / name
    directory.mkdir()
    case = (_issue_example if name == "issue_example" else CASES[name])(directory)
    dataset = open_dataset(case.path, serve_options(series=case.series))
    try:
        documents = {
            level.name: json.loads(bytes(dataset.tree.read_file(f"{level.name}/.zarray")))
            for level in dataset.levels
        }
    finally:
        dataset.close()
    with tifffile.TiffFile(case.path) as tiff:
        stored = tiff.series[case.series].levels
        for index, level in enumerate(stored):
            units = _source_units(level.keyframe, case.axes)
            shape = documents[str(index)]["shape"]
            bound = math.prod(
                (math.ceil(extent / units[axis]) * units[axis] + extent * MARGIN) / extent
                for axis, extent in zip(case.axes, shape, strict=True)
            )
            assert _served_ratio(documents[str(index)]) <= bound, (index, documents[str(index)], units)
    pixels = sum(math.prod(document["shape"]) for document in documents.values())
    served = sum(_served_ratio(document) * math.prod(document["shape"]) for document in documents.values())
    extra = ["--series", str(case.series)] if case.series else []
    shown = zarrfs("info", case.path, *extra).stdout
    assert f"chunk files hold {served / pixels:.2f}x the pixel bytes" in shown


def test_the_issue_example_is_one_chunk(case_dir: Path) -> None:
    case = _issue_example(case_dir)
    dataset = open_dataset(case.path)
    try:
        assert [level.chunks for level in dataset.levels] == [(600, 515)]
    finally:
        dataset.close()


# ----------------------------------------------------------------------------------------------------------
# Placeholder resolutions


def _scale_and_axes(path: Path) -> tuple[list[float], list[dict[str, str]]]:
    dataset = open_dataset(path)
    try:
        multiscale = json.loads(bytes(dataset.tree.read_file(".zattrs")))["multiscales"][0]
    finally:
        dataset.close()
    return multiscale["datasets"][0]["coordinateTransformations"][0]["scale"], multiscale["axes"]


PLACEHOLDER_NOTE = (
    "note:      resolution 10 pixels/cm ignored: the value libvips writes when no resolution was set, not a "
    "pixel size"
)


def _assert_placeholder_ignored(path: Path) -> None:
    with tifffile.TiffFile(path) as tiff:  # what the file says: 10 pixels per centimeter
        page = tiff.pages[0]
        assert (page.get_resolution(), page.resolutionunit) == ((10.0, 10.0), tifffile.RESUNIT.CENTIMETER)
    scale, axes = _scale_and_axes(path)
    assert scale[-2:] == [1.0, 1.0]
    assert all("unit" not in axis for axis in axes)
    lines = zarrfs("info", path).stdout.splitlines()
    assert "physical:  unknown (scale 1 per pixel)" in lines
    assert PLACEHOLDER_NOTE in lines


def test_libvips_placeholder_resolution_is_not_a_pixel_size(tmp_path: Path) -> None:
    require_tools("vips")
    path = tmp_path / "vips.tif"
    subprocess.run(["vips", "black", str(path), "120", "80"], check=True, capture_output=True, timeout=60)
    _assert_placeholder_ignored(path)


def test_ten_pixels_per_cm_written_by_tifffile_is_the_same_placeholder(tmp_path: Path) -> None:
    path = tmp_path / "ten_per_cm.tif"
    tifffile.imwrite(path, np.zeros((40, 50), np.uint8), resolution=(10, 10), resolutionunit="CENTIMETER")
    _assert_placeholder_ignored(path)


def test_real_metric_resolutions_are_still_pixel_sizes_and_dpi_is_noted(tmp_path: Path) -> None:
    metric, dpi = tmp_path / "metric.tif", tmp_path / "dpi.tif"
    tifffile.imwrite(
        metric, np.zeros((40, 50), np.uint8), resolution=(20000, 20000), resolutionunit="CENTIMETER"
    )
    tifffile.imwrite(dpi, np.zeros((40, 50), np.uint8), resolution=(72, 72), resolutionunit="INCH")
    scale, axes = _scale_and_axes(metric)
    assert scale == [0.5, 0.5] and [axis["unit"] for axis in axes] == ["micrometer", "micrometer"]
    assert "note:" not in zarrfs("info", metric).stdout
    assert _scale_and_axes(dpi)[0] == [1.0, 1.0]
    note = "note:      resolution 72 pixels/inch ignored: inch-based resolutions are for printing"
    assert note in zarrfs("info", dpi).stdout.splitlines()


# ----------------------------------------------------------------------------------------------------------
# Messages


@pytest.fixture(scope="module")
def small_tiff(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("small") / "small.tif"
    tifffile.imwrite(path, np.zeros((300, 200), np.uint16), tile=(64, 64))
    return path


def test_shards_without_zarr_v3_say_what_to_add(small_tiff: Path) -> None:
    result = zarrfs("info", small_tiff, "--shards", "2")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        "zarrfs: error: --shards needs Zarr v3: add --ngff 0.5 (NGFF 0.4 is Zarr v2, without shards)\n"
    )
    for ngff in ("0.5", "all"):
        described = zarrfs("info", small_tiff, "--shards", "2", "--ngff", ngff)
        assert described.returncode == 0, described.stderr
        assert "shard files" in described.stdout


def _info_with_a_bug(path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """``zarrfs info`` whose description fails the way a bug in zarrfs would."""
    script = (
        "import sys\n"
        "import zarrfs.core.describe\n"
        "def broken(dataset):\n"
        "    raise RuntimeError('a bug')\n"
        "zarrfs.core.describe.describe = broken\n"
        "from zarrfs.cli import main\n"
        "main(sys.argv[1:], prog_name='zarrfs')\n"
    )
    return subprocess.run(
        [sys.executable, "-c", script, "info", str(path), *options],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_internal_error_hint_works_for_info(small_tiff: Path) -> None:
    plain = _info_with_a_bug(small_tiff)
    assert plain.returncode == 2
    assert (
        plain.stderr == "zarrfs: internal error: RuntimeError: a bug (rerun with --debug for the traceback)\n"
    )
    debug = _info_with_a_bug(small_tiff, "--debug")
    assert debug.returncode == 1, debug.stderr
    assert debug.stderr.startswith("zarrfs: internal error: RuntimeError: a bug\nTraceback")
    assert debug.stderr.rstrip().endswith("RuntimeError: a bug")


@pytest.mark.parametrize(
    "command", [["info", "SOURCE"], ["unmount", "MOUNTPOINT"], ["mount", "SOURCE", "MNT"]]
)
def test_every_command_takes_debug(command: list[str], small_tiff: Path, tmp_path: Path) -> None:
    """Every command that can print "rerun with --debug" takes it (mount: on a missing mount point)."""
    paths = {"SOURCE": str(small_tiff), "MOUNTPOINT": str(tmp_path), "MNT": str(tmp_path / "missing")}
    result = zarrfs(*[paths.get(part, part) for part in command], "--debug")
    assert "No such option" not in result.stderr
    if command[0] == "info":
        assert result.returncode == 0, result.stderr
    else:
        assert result.returncode == 1 and re.fullmatch(r"zarrfs: error: [^\n]*\n", result.stderr), (
            result.stderr
        )
