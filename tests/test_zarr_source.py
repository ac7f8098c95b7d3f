"""Zarr v2/v3 and N5 stores as sources: the conformance suite on stores written by zarr-python, ome-zarr-py
and tensorstore's n5 driver; the same stores through a real mount, read by zarr-python and tensorstore and
validated by ome-zarr-models; pass-through of stored chunk files; bad input."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numcodecs
import numpy as np
import pytest
import tensorstore as ts
import zarr
from mounting import mounted, zarrfs
from zarr_cases import CASES, ZarrCase

from zarrfs.sources.zarrstore import ZarrSource
from zarrfs.testing import SourceCase, SourceConformance


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("zarr_sources")


def _case(store_dir: Path, name: str) -> ZarrCase:
    """Each case written once per module (its directory is kept)."""
    directory = store_dir / name
    marker = directory / "case.json"
    if not marker.exists():
        directory.mkdir(exist_ok=True)
        made = CASES[name](directory)
        np.savez(directory / "levels.npz", *made.levels)
        marker.write_text(json.dumps({"path": str(made.path), "axes": made.axes, "options": made.options}))
    described = json.loads(marker.read_text())
    with np.load(directory / "levels.npz") as saved:
        levels = [saved[f"arr_{index}"] for index in range(len(saved.files))]
    return ZarrCase(Path(described["path"]), levels, described["axes"], described["options"])


def _store_files(path: Path) -> list[str]:
    return [os.path.join(root, name) for root, _, names in os.walk(path) for name in names]


class TestZarrSource(SourceConformance):
    @pytest.fixture(params=sorted(CASES))
    def case(self, request: pytest.FixtureRequest, store_dir: Path) -> SourceCase:
        made = _case(store_dir, request.param)
        return SourceCase(lambda: ZarrSource(str(made.path), made.options), made.levels)

    def test_axes_are_the_stores(self, case: SourceCase, source: ZarrSource, store_dir: Path) -> None:
        assert len(case.references) == len(source.info.levels)  # every stored level is served
        named = {str(made.path): made.axes for made in (_case(store_dir, name) for name in CASES)}
        assert source.info.axes == named[source.path]

    def test_named_files_are_the_metadata_documents(self, source: ZarrSource) -> None:
        files = source.files()
        assert files and all(os.path.isfile(path) and path.startswith(source.path) for path in files)
        assert {os.path.basename(path) for path in files} <= {"zarr.json", ".zarray", ".zgroup", ".zattrs",
                                                             "attributes.json"}  # fmt: skip


def _flags(made: ZarrCase) -> list[str]:
    return [flag for name, value in made.options.items() for flag in (f"--{name}", str(value))]


def _ts_read(path: Path, driver: str) -> np.ndarray:
    array = ts.open({"driver": driver, "kvstore": {"driver": "file", "path": str(path)}}).result()
    return np.asarray(array.read().result())


@pytest.mark.parametrize("name", sorted(CASES))
def test_mounted_store_reads_as_its_source(name: str, store_dir: Path, tmp_path: Path) -> None:
    """Through a real mount, zarr-python and tensorstore read every stored level of both layouts equal to the
    source as zarr-python / tensorstore read it; ome-zarr-models validates both image groups."""
    from ome_zarr_models.v04.image import Image as Image04
    from ome_zarr_models.v05.image import Image as Image05

    made = _case(store_dir, name)
    with mounted(made.path, tmp_path / "mnt", "--ngff", "all", *_flags(made)) as mnt:
        for zarr_format, driver in ((2, "zarr"), (3, "zarr3")):
            group = zarr.open_group(mnt, mode="r", zarr_format=zarr_format)
            (Image04 if zarr_format == 2 else Image05).from_zarr(group)
            for level, reference in enumerate(made.levels):
                served = group[str(level)]
                np.testing.assert_array_equal(
                    served[...], reference, err_msg=f"zarr v{zarr_format} level {level}"
                )
                np.testing.assert_array_equal(_ts_read(mnt / str(level), driver), reference, err_msg=driver)
        attributes = zarr.open_group(mnt, mode="r", zarr_format=2).attrs.asdict()
        axes = [axis["name"] for axis in attributes["multiscales"][0]["axes"]]
        assert "".join(axes) == made.axes


@pytest.mark.parametrize(
    ("name", "flags"),
    [
        ("ome_zarr_05_sharded", ["--ngff", "0.5", "--shards", "2"]),
        ("v3_sharded_transposed", ["--chunks", "2,16,16", "--compressor", "blosc-zstd"]),
        ("n5_multiscale", ["--chunks", "20,30", "--compressor", "zlib", "--shards", "2"]),
        ("v2_zlib_xarray", ["--chunks", "35,45", "--compressor", "zstd", "--levels", "1"]),
    ],
)
def test_served_rechunked_reencoded_and_sharded(
    name: str, flags: list[str], store_dir: Path, tmp_path: Path
) -> None:
    made = _case(store_dir, name)
    with mounted(made.path, tmp_path / "mnt", "--ngff", "all", *flags, *_flags(made)) as mnt:
        for zarr_format, driver in ((2, "zarr"), (3, "zarr3")):
            if not (mnt / (".zgroup" if zarr_format == 2 else "zarr.json")).exists():
                continue  # that layout is not served
            for level, reference in enumerate(made.levels):
                served = zarr.open_array(mnt / str(level), mode="r", zarr_format=zarr_format)
                np.testing.assert_array_equal(served[...], reference, err_msg=f"v{zarr_format} level {level}")
                np.testing.assert_array_equal(_ts_read(mnt / str(level), driver), reference, err_msg=driver)


def test_ome_zarr_metadata_is_carried_over(store_dir: Path, tmp_path: Path) -> None:
    """Scale -> physical sizes with units, omero channel names and colours, as ome-zarr-py wrote them."""
    made = _case(store_dir, "ome_zarr_05_sharded")
    with mounted(made.path, tmp_path / "mnt", "--ngff", "0.4") as mnt:
        attributes = json.loads((mnt / ".zattrs").read_text())
    multiscales = attributes["multiscales"][0]
    units = {axis["name"]: axis.get("unit") for axis in multiscales["axes"]}
    assert units == {"c": None, "z": "micrometer", "y": "micrometer", "x": "micrometer"}
    assert multiscales["datasets"][0]["coordinateTransformations"][0]["scale"] == [1.0, 2.0, 0.5, 0.5]
    channels = [(channel["label"], channel["color"]) for channel in attributes["omero"]["channels"]]
    assert channels == [("DAPI", "0000FF"), ("GFP", "00FF00")]


def test_sharded_v3_source_served_as_unsharded_ngff_04(store_dir: Path, tmp_path: Path) -> None:
    """The point for Fiji, which reads NGFF 0.4 only: a sharded NGFF 0.5 image served as plain Zarr v2."""
    from ome_zarr_models.v04.image import Image as Image04

    made = _case(store_dir, "ome_zarr_05_sharded")
    assert "sharding_indexed" in (made.path / "s0" / "zarr.json").read_text()
    with mounted(made.path, tmp_path / "mnt", "--ngff", "0.4") as mnt:
        assert not (mnt / "zarr.json").exists()
        group = zarr.open_group(mnt, mode="r", zarr_format=2)
        Image04.from_zarr(group)
        for level, reference in enumerate(made.levels):
            np.testing.assert_array_equal(group[str(level)][...], reference)


def test_single_scale_arrays_get_computed_levels(store_dir: Path, tmp_path: Path) -> None:
    plain = _case(store_dir, "v3_blosc")
    with mounted(
        plain.path, tmp_path / "mnt", "--ngff", "0.4", "--chunks", "16,16", "--pixel-size", "z=10"
    ) as mnt:
        group = zarr.open_group(mnt, mode="r", zarr_format=2)
        assert len(group.attrs["multiscales"][0]["datasets"]) > 1
        coarse = group["1"][...]
        reference = plain.levels[0].astype(np.float64)
        expected = (reference[:, 0::2, 0::2] + reference[:, 1::2, 0::2] + reference[:, 0::2, 1::2]
                    + reference[:, 1::2, 1::2]) / 4  # fmt: skip
        np.testing.assert_array_equal(coarse, np.round(expected).astype(np.uint16))


# ---- pass-through -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "flags", "stored", "served", "passes"),
    [
        # Zarr v2 blosc served as the same blosc (cname, clevel, shuffle): the stored file itself.
        (
            "v2_blosc",
            ["--ngff", "0.4", "--compressor", "blosc-lz4", "--clevel", "5"],
            "1.1.2",
            "0/1/1/2",
            True,
        ),
        # Another clevel would misstate the stream: decoded and encoded again.
        (
            "v2_blosc",
            ["--ngff", "0.4", "--compressor", "blosc-lz4", "--clevel", "4"],
            "1.1.2",
            "0/1/1/2",
            False,
        ),
        (
            "v3_blosc",
            ["--ngff", "0.5", "--compressor", "blosc-lz4", "--clevel", "5"],
            "c/2/1/0",
            "0/c/2/1/0",
            True,
        ),
        (
            "v3_blosc",
            ["--ngff", "0.5", "--compressor", "blosc-zstd", "--clevel", "5"],
            "c/2/1/0",
            "0/c/2/1/0",
            False,
        ),
        # Zarr v3 gzip is what --compressor zlib serves on Zarr v3.
        ("v3_gzip_4d", ["--ngff", "0.5", "--compressor", "zlib"], "c/1/0/2/1", "0/c/1/0/2/1", True),
        ("v3_zstd_named", ["--ngff", "0.5", "--compressor", "zstd"], "c/1/1/0", "0/c/1/1/0", True),
        ("v3_zstd_named", ["--ngff", "0.4", "--compressor", "zstd"], "c/1/1/0", "0/1/1/0", True),
        ("v2_sparse_fill", ["--ngff", "0.4"], "0.1.1", "0/0/1/1", True),
    ],
)
def test_stored_chunks_pass_through_where_grid_and_codec_are_the_stored_ones(
    name: str, flags: list[str], stored: str, served: str, passes: bool, store_dir: Path, tmp_path: Path
) -> None:
    made = _case(store_dir, name)
    chunks = json.loads(
        (made.path / ".zarray").read_text()
        if (made.path / ".zarray").exists()
        else (made.path / "zarr.json").read_text()
    )
    shape = chunks.get("chunks") or chunks["chunk_grid"]["configuration"]["chunk_shape"]
    stored_bytes = (made.path / stored).read_bytes()
    with mounted(
        made.path, tmp_path / "mnt", "--ngff", "all", "--chunks", ",".join(map(str, shape)), *flags
    ) as mnt:
        served_bytes = (mnt / served).read_bytes()
        zarr_format = 2 if "0.4" in flags else 3
        np.testing.assert_array_equal(
            zarr.open_array(mnt / "0", mode="r", zarr_format=zarr_format)[...], made.levels[0]
        )
        info = zarrfs("info", made.path, "--chunks", ",".join(map(str, shape)), *flags)
    assert (served_bytes == stored_bytes) is passes
    assert ("0/  codec stored tiles passed through" in info.stdout) is passes, info.stdout


def test_missing_chunks_read_as_the_fill_value(store_dir: Path, tmp_path: Path) -> None:
    made = _case(store_dir, "v2_sparse_fill")
    assert not (made.path / "1.0.0").exists()  # zarr-python wrote no chunk there
    with mounted(made.path, tmp_path / "mnt", "--ngff", "0.4") as mnt:
        assert json.loads((mnt / "0" / ".zarray").read_text())["fill_value"] == -1.5
        served = zarr.open_array(mnt / "0", mode="r", zarr_format=2)[...]
    assert np.all(served[1] == -1.5)
    np.testing.assert_array_equal(served, made.levels[0])


# ---- bad input --------------------------------------------------------------------------------------------


def _error(*args: str | os.PathLike[str]) -> str:
    result = zarrfs("info", *args)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("zarrfs: error: "), result.stderr
    return lines[0]


def test_a_directory_without_zarr_or_n5_metadata_is_not_claimed(tmp_path: Path) -> None:
    """Not an image: a repository (a tree of images), in which neither file is one."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "attributes.json").write_text('{"title": "not N5"}')
    (tmp_path / "data" / "notes.txt").write_text("hello")
    result = zarrfs("info", tmp_path / "data", "--settle", "0")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"repository: {tmp_path / 'data'}\n")
    assert "not shown  attributes.json: no reader opens it" in result.stdout
    assert "0 images (0 cannot be served), 2 entries not shown" in result.stdout


def test_an_unreadable_codec_is_refused_at_open_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "lzma.zarr"
    array = zarr.create_array(path, shape=(20, 20), chunks=(10, 10), dtype="uint8", zarr_format=2,
                              compressors=numcodecs.LZMA())  # fmt: skip
    array[...] = 1
    assert "uses codec 'lzma', which zarrfs cannot read" in _error(path)


def test_a_one_dimensional_array_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "line.zarr"
    zarr.create_array(path, shape=(100,), dtype="uint8")[...] = 1
    assert "has 1 dimension: zarrfs serves images of 2 to 5 dimensions" in _error(path)


def test_a_group_of_several_arrays_lists_them(store_dir: Path) -> None:
    made = _case(store_dir, "group_chosen")
    assert "holds 2 images (/a, /b): choose one with --dataset" in _error(made.path)
    assert "--dataset /c: no Zarr array or group at c" in _error(made.path, "--dataset", "/c")
    assert "its axes from --axes are 'zyxc'" in _error(made.path, "--dataset", "a", "--axes", "zyxc")


def test_a_corrupt_chunk_fails_that_chunk_only(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.zarr"
    data = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
    zarr.create_array(path, shape=(64, 64), chunks=(32, 32), dtype="uint16", zarr_format=2,
                      compressors=numcodecs.Zlib())[...] = data  # fmt: skip
    (path / "0.0").write_bytes(b"this is not a zlib stream")
    with mounted(path, tmp_path / "mnt", "--chunks", "32,32", "--ngff", "0.4") as mnt:
        with pytest.raises(OSError) as failure:
            (mnt / "0" / "0" / "0").read_bytes()
        assert failure.value.errno == errno.EIO
        served = np.frombuffer((mnt / "0" / "1" / "1").read_bytes(), dtype="<u2").reshape(32, 32)
        np.testing.assert_array_equal(served, data[32:, 32:])
    log = (tmp_path / "zarrfs.log").read_text()
    assert "level 0 chunk (0, 0): source read failed: Zarr v2 array /:" in log
    assert "corrupt.zarr/0.0" in log and "chunk (1, 1)" not in log


@pytest.mark.parametrize(
    ("compressor", "size", "reason"),
    [
        (None, 100, "is corrupt: 100 bytes, a raw chunk is 2048"),
        (numcodecs.Zlib(), 10 * 2**30, "is corrupt: 10737418240 bytes, more than any encoding of its chunk"),
    ],
)
def test_a_corrupt_chunk_file_passed_through_fails_that_chunk_only(
    compressor: numcodecs.abc.Codec | None, size: int, reason: str, tmp_path: Path
) -> None:
    """A raw chunk file of the wrong size, a compressed one larger than any encoding of its chunk (a sparse
    10 GiB file: refused without reading or allocating it)."""
    path = tmp_path / "store.zarr"
    data = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
    zarr.create_array(path, shape=(64, 64), chunks=(32, 32), dtype="uint16", zarr_format=2,
                      compressors=compressor)[...] = data  # fmt: skip
    os.truncate(path / "0.0", size)
    flags = ["--compressor", "zlib"] if compressor is not None else []
    with mounted(path, tmp_path / "mnt", "--chunks", "32,32", "--ngff", "0.4", *flags) as mnt:
        with pytest.raises(OSError) as failure:
            (mnt / "0" / "0" / "0").read_bytes()
        assert failure.value.errno == errno.EIO
        assert (mnt / "0" / "1" / "1").read_bytes() == (path / "1.1").read_bytes()  # passed through
    assert reason in (tmp_path / "zarrfs.log").read_text()


def test_ome_zarr_levels_stop_at_one_that_is_no_reduction(tmp_path: Path) -> None:
    """Levels listed after one larger than the level before, or of another dtype, are left out; the levels
    before are served."""
    path = tmp_path / "odd.ome.zarr"
    group = zarr.open_group(path, mode="w", zarr_format=2)
    for name, shape, dtype in (("a", (40, 40), "uint8"), ("b", (20, 20), "uint8"), ("c", (30, 30), "uint8"),
                               ("d", (10, 10), "uint8")):  # fmt: skip
        group.create_array(name, shape=shape, dtype=dtype)[...] = 1
    datasets = [{"path": name, "coordinateTransformations": [{"type": "scale", "scale": [1.0, 1.0]}]}
                for name in "abcd"]  # fmt: skip
    axes = [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}]
    group.attrs["multiscales"] = [{"version": "0.4", "axes": axes, "datasets": datasets}]
    source = ZarrSource(str(path))
    assert [level.shape for level in source.info.levels] == [(40, 40), (20, 20)]
    source.close()
