"""Sources of several images (a multi-series TIFF, an OME-TIFF of two Images, an HDF5 file of two image
datasets, a BigDataViewer file of two tiles) served in the bioformats2raw layout, through every front end,
against tifffile, h5py and npy2bdv; and read by ome-zarr-models, ome-zarr-py and bioio-ome-zarr."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile
import zarr
from frontends import FRONT_ENDS, serve
from http_serving import serving
from mounting import mounted, validate_ngff

from zarrfs.core.collection import SeriesCollection
from zarrfs.core.dataset import Dataset
from zarrfs.core.options import serve_options
from zarrfs.core.requests import SourceChangedError
from zarrfs.core.served import open_served


@dataclass
class MultiCase:
    path: Path
    series: list[np.ndarray]  # level 0 of each series as served (canonical axes), from an independent reader
    ome_xml: str | None  # what OME/METADATA.ome.xml must hold


def _random(seed: int, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.random.default_rng(seed).integers(info.min, info.max, shape, dtype=dtype, endpoint=True)


def write_tiff(directory: Path) -> MultiCase:
    """A plain TIFF of two series: a 2-D plane, then a tiled z-stack of another type."""
    path = directory / "series.tif"
    with tifffile.TiffWriter(path) as writer:
        writer.write(_random(1, (50, 70), "uint8"))
        writer.write(_random(2, (4, 40, 60), "uint16"), photometric="minisblack", tile=(16, 16))
    series = [tifffile.imread(path, series=index) for index in range(2)]
    return MultiCase(path, series, None)


def write_ome_tiff(directory: Path) -> MultiCase:
    """An OME-TIFF of two Images written by tifffile (its OME-XML names both)."""
    path = directory / "images.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as writer:
        writer.write(
            _random(3, (3, 40, 50), "uint16"),
            metadata={"axes": "ZYX", "Name": "first", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5},
        )
        writer.write(_random(4, (2, 30, 20), "uint8"), metadata={"axes": "CYX", "Name": "second"})
    with tifffile.TiffFile(path) as tiff:
        xml = tiff.ome_metadata
        series = [tiff.series[index].asarray() for index in range(2)]
    return MultiCase(path, series, xml)


def write_hdf5(directory: Path) -> MultiCase:
    """An HDF5 file of two image datasets (and a 1-D one, which is no image), written by h5py."""
    path = directory / "datasets.h5"
    with h5py.File(path, "w") as file:
        file.create_dataset("raw", data=_random(5, (20, 30), "uint16"))
        file.create_dataset("labels/cells", data=_random(6, (4, 10, 12), "uint8"), chunks=(1, 5, 6))
        file.create_dataset("times", data=np.arange(10.0))
    with h5py.File(path, "r") as file:
        series = [file["labels/cells"][...], file["raw"][...]]  # in the order of their paths
    return MultiCase(path, series, None)


def write_bdv(directory: Path) -> MultiCase:
    """A BigDataViewer file of two tiles (two setups of one channel) written by npy2bdv, with its XML."""
    import npy2bdv

    path = directory / "tiles.h5"
    writer = npy2bdv.BdvWriter(
        str(path), ntiles=2, subsamp=((1, 1, 1), (2, 2, 2)), blockdim=((4, 32, 32), (4, 16, 16))
    )
    for tile in range(2):
        writer.append_view(
            _random(7 + tile, (6, 40, 36), "uint16"), tile=tile, voxel_size_xyz=(0.4, 0.4, 2.0)
        )
    writer.write_xml()
    writer.close()
    with h5py.File(path, "r") as file:  # stored as int16, read back as uint16; one channel each
        series = [file[f"t00000/s0{setup}/0/cells"][...].view(np.uint16)[np.newaxis] for setup in range(2)]
    return MultiCase(path, series, None)


WRITERS: dict[str, Callable[[Path], MultiCase]] = {
    "tiff": write_tiff,
    "ome_tiff": write_ome_tiff,
    "hdf5": write_hdf5,
    "bdv": write_bdv,
}


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, MultiCase]:
    directory = tmp_path_factory.mktemp("multiseries")
    return {name: write(directory) for name, write in WRITERS.items()}


def _check_hierarchy(root: zarr.Group, case: MultiCase, zarr_format: int) -> None:
    """The bioformats2raw documents and every series' level 0 as zarr-python reads them."""
    attributes = dict(root.attrs)
    if zarr_format == 3:
        assert attributes == {"ome": {"version": "0.5", "bioformats2raw.layout": 3}}
    else:
        assert attributes == {"bioformats2raw.layout": 3}
    paths = [str(index) for index in range(len(case.series))]
    listed = dict(root["OME"].attrs)
    assert (listed["ome"]["series"] if zarr_format == 3 else listed["series"]) == paths
    for path, expected in zip(paths, case.series, strict=True):
        array = root[f"{path}/0"]
        assert array.dtype == expected.dtype
        np.testing.assert_array_equal(array[...], expected)


@pytest.mark.parametrize("name", list(WRITERS))
@pytest.mark.parametrize("front_end", FRONT_ENDS)
def test_every_series_reads_equal_through_every_front_end(
    cases: dict[str, MultiCase], name: str, front_end: str, tmp_path: Path
) -> None:
    case = cases[name]
    with serve(front_end, case.path, tmp_path, "--ngff", "all") as served:
        for zarr_format in (2, 3):
            _check_hierarchy(served.group(zarr_format), case, zarr_format)


def _validate(mountpoint: Path, ngff: str, count: int) -> None:
    """ome-zarr-models' bioformats2raw model validates the root and every image in it; its command line
    validates each image (it tries the bioformats2raw model only for NGFF 0.4: there the root too)."""
    from ome_zarr_models.v04.bioformats2raw import BioFormats2Raw as BioFormats2RawV04
    from ome_zarr_models.v05.bioformats2raw import BioFormats2Raw as BioFormats2RawV05

    model = BioFormats2RawV04 if ngff == "0.4" else BioFormats2RawV05
    model.from_zarr(zarr.open_group(mountpoint, mode="r", zarr_format=2 if ngff == "0.4" else 3))
    for path in [*([mountpoint] if ngff == "0.4" else []), *(mountpoint / str(i) for i in range(count))]:
        validate_ngff(path)


@pytest.mark.parametrize("name", list(WRITERS))
@pytest.mark.parametrize("ngff", ["0.4", "0.5"])
def test_a_mount_validates_and_its_consolidated_metadata_is_the_documents(
    cases: dict[str, MultiCase], name: str, ngff: str, tmp_path: Path
) -> None:
    case = cases[name]
    with mounted(case.path, tmp_path / f"{name}.ome.zarr", "--ngff", ngff) as mountpoint:
        _validate(mountpoint, ngff, len(case.series))
        if ngff == "0.4":
            consolidated = json.loads((mountpoint / ".zmetadata").read_text())["metadata"]
            documents = [".zgroup", ".zattrs", "OME/.zgroup", "OME/.zattrs"]
            for index in range(len(case.series)):
                documents += [f"{index}/.zgroup", f"{index}/.zattrs", f"{index}/0/.zarray"]
        else:
            consolidated = json.loads((mountpoint / "zarr.json").read_text())["consolidated_metadata"][
                "metadata"
            ]
            documents = ["OME/zarr.json"]
            for index in range(len(case.series)):
                documents += [f"{index}/0/zarr.json"]
            consolidated = {f"{node}/zarr.json": document for node, document in consolidated.items()}
        for document in documents:
            assert consolidated[document] == json.loads((mountpoint / document).read_text()), document
        root = zarr.open_consolidated(mountpoint, mode="r", zarr_format=2 if ngff == "0.4" else 3)
        _check_hierarchy(root, case, 2 if ngff == "0.4" else 3)
        xml = mountpoint / "OME" / "METADATA.ome.xml"
        if case.ome_xml is None:
            assert not xml.exists()
        else:
            assert xml.read_text() == case.ome_xml


def test_ome_zarr_py_finds_the_series_and_reads_each(cases: dict[str, MultiCase], tmp_path: Path) -> None:
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader
    from ome_zarr.utils import find_multiscales

    case = cases["ome_tiff"]
    with mounted(case.path, tmp_path / "images.ome.zarr") as mountpoint:
        # ome-zarr-py finds the series of the bioformats2raw layout by the Images of its OME-XML.
        found = find_multiscales(mountpoint)
        assert [(Path(path), name) for path, name, _ in found] == [
            (mountpoint / "0", "first"),
            (mountpoint / "1", "second"),
        ]
        for index, expected in enumerate(case.series):
            nodes = list(Reader(parse_url(str(mountpoint / str(index))))())
            np.testing.assert_array_equal(np.asarray(nodes[0].data[0]), expected)


BIOIO_SCRIPT = """
import sys, numpy as np
import bioio_ome_zarr
from bioio import BioImage
for index, saved in enumerate(sys.argv[2:]):
    image = BioImage(f"{sys.argv[1]}/{index}", reader=bioio_ome_zarr.Reader)
    np.save(saved, image.reader.xarray_data.data)
"""


@pytest.mark.parametrize("name", ["ome_tiff", "bdv"])
def test_bioio_reads_each_series(cases: dict[str, MultiCase], name: str, tmp_path: Path) -> None:
    """bioio-ome-zarr refuses the bioformats2raw root by design ("BioIO does *not* support reading stores
    using this format"); each series is an OME-Zarr image it reads (in a fresh interpreter)."""
    case = cases[name]
    saved = [tmp_path / f"{index}.npy" for index in range(len(case.series))]
    with mounted(case.path, tmp_path / f"{name}.ome.zarr", "--ngff", "0.5") as mountpoint:
        result = subprocess.run(
            [sys.executable, "-c", BIOIO_SCRIPT, str(mountpoint), *map(str, saved)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    for path, expected in zip(saved, case.series, strict=True):
        np.testing.assert_array_equal(np.load(path).reshape(expected.shape), expected)


@pytest.mark.parametrize(
    ("name", "options", "index"),
    [
        ("tiff", ("--series", "1"), 1),
        ("ome_tiff", ("--series", "0"), 0),
        ("hdf5", ("--series", "1"), 1),
        ("hdf5", ("--dataset", "/labels/cells"), 0),
        ("bdv", ("--series", "1"), 1),
    ],
)
def test_choosing_one_series_serves_that_image_alone(
    cases: dict[str, MultiCase], name: str, options: tuple[str, ...], index: int, tmp_path: Path
) -> None:
    case = cases[name]
    with serve("store", case.path, tmp_path, *options) as served:
        root = served.group()
        assert "bioformats2raw.layout" not in root.attrs and "multiscales" in root.attrs
        np.testing.assert_array_equal(root["0"][...], case.series[index])


def test_one_image_sources_stay_one_image(tmp_path: Path) -> None:
    """A single-series TIFF, and BigDataViewer setups that are channels of one image, are served as today."""
    from hdf5_cases import write_bdv as write_channels

    single = tmp_path / "one.tif"
    tifffile.imwrite(single, _random(9, (30, 40), "uint16"))
    for path in (single, write_channels(tmp_path).path):
        served = open_served(path)
        try:
            assert isinstance(served, Dataset)
        finally:
            served.close()


def test_a_changed_source_fails_every_series(cases: dict[str, MultiCase], tmp_path: Path) -> None:
    path = tmp_path / "changing.tif"
    path.write_bytes(cases["tiff"].path.read_bytes())
    served = open_served(path, serve_options())
    try:
        assert isinstance(served, SeriesCollection)
        assert served.files() == (str(path),)
        assert len(served.tree.read_file("1/0/0/0/0")) > 0
        with path.open("ab") as file:
            file.write(b"\0")
        for chunk in ("0/0/0/0", "1/0/0/0/0"):  # the second one cached before the change
            with pytest.raises(SourceChangedError):
                served.tree.read_file(chunk)
    finally:
        served.close()


def test_info_lists_the_series(cases: dict[str, MultiCase]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "zarrfs", "info", str(cases["hdf5"].path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1] == "layout:    bioformats2raw: 2 series at 0/ to 1/ (serve one alone with --series N)"
    assert "series 0: /labels/cells (at 0/)" in lines and "series 1: /raw (at 1/)" in lines


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--series", "3"), "series 3 does not exist: the file has 2 series (series 0-1)"),
        (
            ("--series", "0", "--dataset", "/raw"),
            "--dataset and --series both choose the image: give one of them",
        ),
    ],
)
def test_bad_series_choices_are_one_line(
    cases: dict[str, MultiCase], options: tuple[str, ...], message: str
) -> None:
    path = cases["hdf5"].path
    result = subprocess.run(
        [sys.executable, "-m", "zarrfs", "info", str(path), *options],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr == f"zarrfs: error: {message}: {path}\n"


def test_the_http_index_lists_the_series_without_precomputed(cases: dict[str, MultiCase]) -> None:
    with serving(cases["ome_tiff"].path) as server:
        status, _, body = server.request("GET", "/", {"Accept": "application/json"})
        assert status == 200
        index = json.loads(body)
        assert index["layout"] == "bioformats2raw"
        assert [(item["path"], item["name"]) for item in index["series"]] == [("0", "first"), ("1", "second")]
        status, _, page = server.request("GET", "/", {"Accept": "text/html"})
        assert status == 200 and b"bioformats2raw layout" in page and b"<td>second</td>" in page
        assert server.request("GET", "/precomputed/info")[0] == 404
        status, headers, body = server.request("GET", "/OME/METADATA.ome.xml")
        assert status == 200 and headers["content-type"] == "application/xml"
        assert body.decode() == cases["ome_tiff"].ome_xml
