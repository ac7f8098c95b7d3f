"""The HDF5 reader: the conformance suite over files written by h5py, hdf5plugin and npy2bdv (and Imaris files
built as the Imaris 5.5 format describes), metadata of each layout, and every bad input of issue 12."""

from __future__ import annotations

from pathlib import Path

import h5py
import hdf5plugin
import numpy as np
import pytest
from hdf5_cases import CASES, IMARIS_CHANNELS, Hdf5Case, write_bdv, write_imaris, write_pli
from mounting import zarrfs

from zarrfs.errors import SourceError
from zarrfs.sources import PhysicalSize, open_source
from zarrfs.sources.hdf5.source import Hdf5Source
from zarrfs.testing import SourceCase, SourceConformance


@pytest.fixture(scope="module")
def case_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hdf5")


_MADE: dict[Path, Hdf5Case] = {}


def made(name: str, directory: Path) -> Hdf5Case:
    """The case written once per directory (the conformance tests share the module's)."""
    folder = directory / name
    if folder not in _MADE:
        folder.mkdir()
        _MADE[folder] = CASES[name](folder)
    return _MADE[folder]


class TestHdf5Source(SourceConformance):
    @pytest.fixture(params=sorted(CASES))
    def case(self, request: pytest.FixtureRequest, case_dir: Path) -> SourceCase:
        case = made(request.param, case_dir)
        return SourceCase(
            lambda: Hdf5Source(str(case.path), case.dataset, case.axes),
            case.levels,
            [str(f) for f in case.files],
        )


def test_the_registry_opens_hdf5_by_its_signature_also_after_a_user_block(tmp_path: Path) -> None:
    case = made("user_block", tmp_path)
    with open_source(case.path) as source:
        assert isinstance(source, Hdf5Source)
        np.testing.assert_array_equal(source.read_region(0, (slice(0, 64), slice(0, 80))), case.levels[0])


def test_layouts_give_axes_levels_sizes_and_channels(tmp_path: Path) -> None:
    with Hdf5Source(str(write_imaris(tmp_path).path)) as source:
        info = source.info
        assert info.axes == "tczyx"
        assert [level.shape for level in info.levels] == [
            (2, 2, 7, 90, 75),
            (2, 2, 3, 45, 37),
            (2, 2, 1, 22, 18),
        ]
        assert info.physical_sizes == {
            "x": PhysicalSize(0.25, "micrometer"),
            "y": PhysicalSize(0.25, "micrometer"),
            "z": PhysicalSize(1.5, "micrometer"),
            "t": PhysicalSize(2.0, "second"),
        }
        assert [(c.name, c.color) for c in info.channels] == [("DAPI", "0000FF"), ("GFP", "00FF00")]
        assert len(IMARIS_CHANNELS) == 2
    with Hdf5Source(str(write_bdv(tmp_path).path)) as source:
        info = source.info
        assert info.axes == "tczyx" and info.dtype == np.uint16
        assert [level.shape for level in info.levels] == [(2, 2, 9, 70, 66), (2, 2, 5, 35, 33)]
        assert info.physical_sizes["z"] == PhysicalSize(2.0, "micrometer")
        assert info.physical_sizes["x"] == PhysicalSize(0.4, "micrometer")
        assert len(info.channels) == 2
    with Hdf5Source(str(write_pli(tmp_path).path)) as source:
        info = source.info
        assert info.axes == "yx"
        assert [level.shape for level in info.levels] == [(300, 260), (150, 130), (75, 65)]
        assert info.physical_sizes == {
            "x": PhysicalSize(1.3, "micrometer"),
            "y": PhysicalSize(1.3, "micrometer"),
        }


def test_element_size_um_and_axis_attributes(tmp_path: Path) -> None:
    path = tmp_path / "ilastik.h5"
    data = np.arange(2 * 3 * 20 * 30, dtype=np.uint16).reshape(3, 20, 30, 2)
    with h5py.File(path, "w") as file:
        dataset = file.create_dataset("exported_data", data=data)
        dataset.attrs["axistags"] = '{"axes": [{"key": "z"}, {"key": "y"}, {"key": "x"}, {"key": "c"}]}'
        dataset.attrs["element_size_um"] = np.array([2.0, 0.5, 0.5, 1.0])
    with Hdf5Source(str(path)) as source:
        assert source.info.axes == "czyx"
        assert source.info.physical_sizes == {
            "z": PhysicalSize(2.0, "micrometer"),
            "y": PhysicalSize(0.5, "micrometer"),
            "x": PhysicalSize(0.5, "micrometer"),
        }
        whole = (slice(0, 2), slice(0, 3), slice(0, 20), slice(0, 30))
        np.testing.assert_array_equal(source.read_region(0, whole), data.transpose(3, 0, 1, 2))


def test_native_blocks_are_the_stored_chunks(tmp_path: Path) -> None:
    case = made("shuffle_deflate_3d_uint16", tmp_path)
    with Hdf5Source(str(case.path)) as source, h5py.File(case.path, "r", locking=False) as file:
        native = source.native_blocks(0)
        assert native is not None and native.block_shape == (8, 64, 64)
        assert native.codec is not None and native.codec["id"] == "zlib"
        assert [dict(f) for f in native.filters] == [{"id": "shuffle", "elementsize": 2}]
        for index in ((0, 0, 0), (2, 1, 1)):
            _, stored = file["data"].id.read_direct_chunk(
                tuple(i * c for i, c in zip(index, (8, 64, 64), strict=True))
            )
            assert source.read_native_block(0, index) == stored
    # Transposed storage and filters no Zarr codec reads are decoded instead.
    for name in ("dimension_labels_xyz", "lzf_uint16", "big_endian_int16"):
        with Hdf5Source(str(made(name, tmp_path).path)) as source:
            assert source.native_blocks(0) is None, name


# ----------------------------------------------------------------------------------------------------------
# Bad input: one line at open, or EIO for one chunk


def _error(path: Path, *options: str) -> str:
    result = zarrfs("info", path, *options)
    assert result.returncode == 1, result.stdout
    assert result.stderr.count("\n") == 1, result.stderr
    return result.stderr


def test_a_truncated_file_is_refused_at_open(tmp_path: Path) -> None:
    case = made("shuffle_deflate_3d_uint16", tmp_path)
    data = case.path.read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[: len(data) // 2])
    assert _error(cut) == (
        f"zarrfs: error: file is truncated: it has {len(data) // 2} bytes but its HDF5 superblock says "
        f"{len(data)}: {cut}\n"
    )


def test_a_file_with_another_signature_is_not_claimed(tmp_path: Path) -> None:
    path = tmp_path / "picture.h5"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(2000))
    message = _error(path)
    assert "zarrfs: error: not a supported image format (supported: " in message and "HDF5" in message


def test_dataset_option_errors_name_the_candidates(tmp_path: Path) -> None:
    path = tmp_path / "several.h5"
    with h5py.File(path, "w") as file:
        file.create_dataset("raw", data=np.zeros((10, 10), np.uint8))
        file.create_dataset("labels/cells", data=np.zeros((4, 10, 10), np.uint8))
        file.create_dataset("times", data=np.zeros(10))
    candidates = "datasets of 2 or more dimensions: /labels/cells, /raw"
    # (Without --dataset, the two are served as series: test_multiseries.py.)
    assert _error(path, "--dataset", "/nothing") == (
        f"zarrfs: error: --dataset /nothing: no such dataset in the file ({candidates}): {path}\n"
    )
    assert _error(path, "--dataset", "/times") == (
        f"zarrfs: error: dataset /times has 1 dimension: zarrfs serves datasets of 2 or more ({candidates}): "
        f"{path}\n"
    )
    assert _error(path, "--dataset", "/labels") == (
        f"zarrfs: error: /labels is a group, not a dataset ({candidates}): {path}\n"
    )
    result = zarrfs("info", path, "--dataset", "/labels/cells")
    assert result.returncode == 0 and "HDF5, dataset /labels/cells" in result.stdout


def test_ambiguous_axes_need_the_axes_option(tmp_path: Path) -> None:
    path = tmp_path / "four.h5"
    with h5py.File(path, "w") as file:
        file.create_dataset("data", data=np.zeros((2, 3, 10, 10), np.uint8))
    assert _error(path) == (
        f"zarrfs: error: dataset /data has 4 dimensions (2x3x10x10) and no axis names: give them with "
        f"--axes, e.g. --axes czyx (czyx or tzyx): {path}\n"
    )
    assert _error(path, "--axes", "zyx") == (
        f"zarrfs: error: invalid axes 'zyx' from --axes for dataset /data: 3 axes for a dataset of 4 "
        f"dimensions (2x3x10x10): {path}\n"
    )
    result = zarrfs("info", path, "--axes", "tzyx")
    assert result.returncode == 0, result.stderr


def test_an_unknown_filter_names_the_plugin_to_install(tmp_path: Path) -> None:
    path = tmp_path / "blosc2.h5"
    with h5py.File(path, "w") as file:
        file.create_dataset(
            "data", data=np.zeros((64, 64), np.uint16), chunks=(32, 32), **hdf5plugin.Blosc2()
        )
    # As on a machine without hdf5plugin: an import of it that fails, and no plugin directory.
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "hdf5plugin.py").write_text("raise ImportError('hdf5plugin is not installed')\n")
    import os

    env = {"PYTHONPATH": f"{shadow}:{os.environ.get('PYTHONPATH', '')}", "HDF5_PLUGIN_PATH": str(shadow)}
    result = zarrfs("info", path, env=env)
    assert result.returncode == 1
    assert result.stderr == (
        f"zarrfs: error: cannot decode dataset /data of {path}: it uses HDF5 filter 32026 (blosc2); install "
        f"hdf5plugin (pip install hdf5plugin), which provides the blosc2 filter\n"
    )
    result = zarrfs("info", path)  # with hdf5plugin, HDF5 decodes it
    assert result.returncode == 0, result.stderr


def test_a_corrupt_chunk_fails_that_chunk_only(tmp_path: Path) -> None:
    case = made("deflate_2d_uint8", tmp_path)
    with h5py.File(case.path, "r") as file:
        info = file["data"].id.get_chunk_info_by_coord((64, 64))
    with open(case.path, "r+b") as handle:
        handle.seek(info.byte_offset)
        handle.write(b"\x00" * info.size)
    with Hdf5Source(str(case.path)) as source:
        with pytest.raises(SourceError) as error:
            source.read_region(0, (slice(64, 65), slice(64, 65)))
        assert str(error.value).startswith("cannot decode chunk (1, 1) of /data (")
        np.testing.assert_array_equal(
            source.read_region(0, (slice(0, 64), slice(0, 64))), case.levels[0][:64, :64]
        )


def test_an_empty_dataset_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.h5"
    with h5py.File(path, "w") as file:
        file.create_dataset("empty", shape=(0, 10), dtype=np.uint8)
    assert _error(path) == f"zarrfs: error: dataset /empty is empty (shape 0x10): {path}\n"
