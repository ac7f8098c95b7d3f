"""Library code leaves the user's process as it found it."""

from __future__ import annotations

from pathlib import Path

import numcodecs.blosc
import numpy as np
import tifffile
import zarr

import zarrfs


def test_open_store_leaves_numcodecs_blosc_settings_alone(tmp_path: Path) -> None:
    image = tmp_path / "image.tif"
    data = np.arange(300 * 260, dtype=np.uint16).reshape(300, 260)
    tifffile.imwrite(image, data, tile=(64, 64))
    before = (numcodecs.blosc.use_threads, numcodecs.blosc.get_nthreads())
    numcodecs.blosc.use_threads = True
    try:
        store = zarrfs.open_store(image, compressor="blosc-lz4", ngff="0.4")
        np.testing.assert_array_equal(zarr.open_array(store, path="0", mode="r")[...], data)
        store.close()
        assert numcodecs.blosc.use_threads is True
        assert numcodecs.blosc.get_nthreads() == before[1]
    finally:
        numcodecs.blosc.use_threads = before[0]
