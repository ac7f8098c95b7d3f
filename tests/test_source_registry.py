"""The reader registry: locations, options by name, and third-party readers found through entry points."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from mounting import mounted, zarrfs

from zarrfs.errors import SourceError
from zarrfs.sources import ENTRY_POINT_GROUP, REGISTRY, Location, NativeBlocks, open_source
from zarrfs.sources.registry import _builtin_readers

PLUGIN = '''
"""A third-party reader of .npy files, installed as a distribution with a zarrfs.sources entry point."""
from typing import ClassVar

import numpy as np

from zarrfs.sources import ImageSource, Level, Location, Reader, SourceInfo


class NpySource(ImageSource):
    def __init__(self, path):
        self.path = path
        self._data = np.load(path, mmap_mode="r")
        axes = "tczyx"[-self._data.ndim:]
        self.info = SourceInfo(axes, self._data.dtype, [Level(self._data.shape, self._data.shape)],
                               description="numpy .npy file")

    def read_region(self, level, region):
        if self._data is None:
            raise OSError("closed")
        return np.array(self._data[region])

    def close(self):
        self._data = None


class NpyReader(Reader):
    name: ClassVar[str] = "NPY"

    def claims(self, location: Location) -> bool:
        return location.is_file and location.header.startswith(b"\\x93NUMPY")

    def open(self, location, options, block_cache_bytes):
        return NpySource(location.path)
'''


@pytest.fixture
def plugin_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An installed distribution (a dist-info beside its module) that registers NpyReader, on the path of
    this process and of every zarrfs it starts."""
    site = tmp_path / "site"
    (site / "zarrfs_npy_plugin-1.0.dist-info").mkdir(parents=True)
    (site / "zarrfs_npy_plugin.py").write_text(PLUGIN)
    (site / "zarrfs_npy_plugin-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: zarrfs-npy-plugin\nVersion: 1.0\n"
    )
    (site / "zarrfs_npy_plugin-1.0.dist-info" / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nnpy = zarrfs_npy_plugin:NpyReader\n"
    )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))
    REGISTRY.reload()
    yield site
    REGISTRY.reload()
    sys.modules.pop("zarrfs_npy_plugin", None)


def test_a_reader_registered_through_an_entry_point_serves_a_mount(plugin_path: Path, tmp_path: Path) -> None:
    data = np.arange(3 * 70 * 90, dtype=np.uint16).reshape(3, 70, 90)
    source = tmp_path / "volume.npy"
    np.save(source, data)
    assert "NPY" in [reader.name for reader in REGISTRY.readers()]
    with open_source(source) as opened:
        assert opened.info.axes == "zyx"
    with mounted(source, tmp_path / "mnt", "--ngff", "0.4") as mnt:
        np.testing.assert_array_equal(zarr.open_array(mnt / "0", mode="r")[...], data)
    result = zarrfs("info", source, "--series", "1")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "zarrfs: error: --series does not apply to NPY sources (NPY takes: no format options)"
    )


def test_a_broken_plugin_leaves_the_built_in_readers_working(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    (site / "broken-1.0.dist-info").mkdir(parents=True)
    (site / "broken-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: broken\nVersion: 1.0\n"
    )
    (site / "broken-1.0.dist-info" / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nbroken = no_such_module_anywhere:Reader\n"
    )
    monkeypatch.syspath_prepend(str(site))
    REGISTRY.reload()
    try:
        image = tmp_path / "a.tif"
        tifffile.imwrite(image, np.ones((8, 8), np.uint8))
        with open_source(image) as source:
            assert source.info.dtype == np.uint8
        assert [reader.name for reader in REGISTRY.readers()] == [
            reader.name for reader in _builtin_readers()
        ]
    finally:
        REGISTRY.reload()


def test_options_reach_the_reader_by_name_and_unknown_ones_are_refused(tmp_path: Path) -> None:
    image = tmp_path / "two.tif"
    with tifffile.TiffWriter(image) as tif:
        tif.write(np.zeros((4, 4), np.uint8))
        tif.write(np.full((6, 5), 7, np.uint8))
    with open_source(image, {"series": 1}) as source:
        assert source.info.levels[0].shape == (6, 5)
    with open_source(image, {"series": None}) as source:  # not set: the reader's default
        assert source.info.levels[0].shape == (4, 4)
    with pytest.raises(SourceError) as error:
        open_source(image, {"dataset": "/image", "axes": "zyx"})
    assert str(error.value) == "--axes, --dataset does not apply to TIFF sources (TIFF takes: --series)"


def test_locations_name_files_directories_and_sequences(tmp_path: Path) -> None:
    image = tmp_path / "a.tif"
    tifffile.imwrite(image, np.ones((8, 8), np.uint8))
    location = Location.of(image)
    assert location.is_file and not location.is_directory and not location.is_sequence
    assert location.header[:2] == b"II"
    assert Location.of(tmp_path).is_directory
    sequence = Location.of([image, image])
    assert sequence.is_sequence and not sequence.is_file
    with pytest.raises(SourceError, match="is a directory, not an image any reader opens"):
        open_source(tmp_path)
    with pytest.raises(SourceError, match="unknown format 'hdf9'"):
        open_source(image, format_name="hdf9")


def test_native_block_codecs_are_codec_configurations() -> None:
    assert NativeBlocks((1, 256, 256), "zlib").codec == {"id": "zlib"}
    assert NativeBlocks((1, 256, 256), "none").codec is None
    deep = NativeBlocks((16, 64, 64), {"id": "zstd", "level": 3})
    assert deep.codec_id == "zstd" and deep.block_shape == (16, 64, 64)
