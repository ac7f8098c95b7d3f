"""--pixel-size sets or overrides physical sizes for any format; reader options a format lacks are refused."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import tifffile
from mounting import mounted, zarrfs

from zarrfs.core.options import parse_pixel_sizes
from zarrfs.errors import ZarrfsError
from zarrfs.sources import PhysicalSize


@pytest.fixture
def stack(tmp_path: Path) -> Path:
    path = tmp_path / "stack.ome.tif"
    tifffile.imwrite(
        path,
        np.zeros((4, 64, 80), np.uint16),
        metadata={"axes": "ZYX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5, "PhysicalSizeZ": 2.0},
    )
    return path


def test_pixel_sizes_parse_with_units_and_defaults() -> None:
    assert parse_pixel_sizes(["z=20", "x=0.325um,y=325nm", "t=2.5 s"]) == {
        "z": PhysicalSize(20.0, "micrometer"),
        "x": PhysicalSize(0.325, "micrometer"),
        "y": PhysicalSize(325.0, "nanometer"),
        "t": PhysicalSize(2.5, "second"),
    }
    assert parse_pixel_sizes({"z": "1.5mm"}) == {"z": PhysicalSize(1.5, "millimeter")}
    for bad, reason in [
        ("z20", "use AXIS=VALUE[UNIT]"),
        ("c=2", "use AXIS=VALUE[UNIT]"),
        ("z=-1", "the size must be a positive number"),
        ("z=nan", "use AXIS=VALUE[UNIT]"),
        ("z=1e400", "the size must be a positive number"),
        ("z=2 parsec-ish", "unknown space unit 'parsec-ish'"),
        ("t=2 um", "unknown time unit 'um'"),
    ]:
        with pytest.raises(ZarrfsError, match=re.escape(reason)):
            parse_pixel_sizes([bad])


def test_pixel_size_overrides_what_the_file_says_through_a_mount(stack: Path, tmp_path: Path) -> None:
    with mounted(stack, tmp_path / "mnt", "--ngff", "0.4", "--pixel-size", "z=20", "--levels", "1") as mnt:
        attributes = json.loads((mnt / ".zattrs").read_text())
    multiscale = attributes["multiscales"][0]
    assert multiscale["datasets"][0]["coordinateTransformations"][0]["scale"] == [20.0, 0.5, 0.5]
    assert [axis.get("unit") for axis in multiscale["axes"]] == ["micrometer"] * 3
    result = zarrfs("info", stack, "--pixel-size", "x=1um", "--pixel-size", "y=1um")
    assert result.returncode == 0 and "x 1 micrometer, y 1 micrometer, z 2 micrometer" in result.stdout


def test_reader_options_a_format_does_not_take_are_refused(stack: Path) -> None:
    result = zarrfs("info", stack, "--dataset", "/Image")
    assert result.returncode == 1
    assert result.stderr == "zarrfs: error: --dataset does not apply to TIFF sources (TIFF takes: --series)\n"
    result = zarrfs("info", stack, "--pixel-size", "z=oops")
    assert result.returncode == 1
    assert result.stderr.startswith("zarrfs: error: invalid --pixel-size 'z=oops'")
