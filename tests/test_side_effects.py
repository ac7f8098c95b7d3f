"""Library code leaves the user's process as it found it."""

from __future__ import annotations

import os
import subprocess
import sys
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


def test_importing_the_fuse_front_end_loads_no_libfuse_and_leaves_the_environment() -> None:
    code = (
        "import os, sys; before = dict(os.environ); "
        "import zarrfs.frontends.fuse_ops, zarrfs.frontends.mount, zarrfs.frontends.fuse_binding; "
        "assert 'mfusepy' not in sys.modules, 'mfusepy imported'; "
        "assert not any('libfuse' in line for line in open('/proc/self/maps')), 'libfuse loaded'; "
        "from zarrfs.frontends.fuse_binding import fuse_class; fuse_class(); "
        "assert any('libfuse' in line for line in open('/proc/self/maps')), 'libfuse not loaded on use'; "
        "assert dict(os.environ) == before, 'environment changed'"
    )
    env = {key: value for key, value in os.environ.items() if key != "FUSE_LIBRARY_NAME"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stderr


def test_each_dataset_has_its_own_fanout_workers_and_they_end_with_it(tmp_path: Path) -> None:
    import threading

    from zarrfs.core import open_dataset
    from zarrfs.core.options import serve_options

    image = tmp_path / "image.tif"
    tifffile.imwrite(image, np.arange(1024 * 1024, dtype=np.uint16).reshape(1024, 1024), tile=(128, 128))

    def fanout_threads() -> set[threading.Thread]:
        return {thread for thread in threading.enumerate() if thread.name.startswith("zarrfs-fanout")}

    before = fanout_threads()
    first = open_dataset(image, serve_options(chunks="128,128"))
    second = open_dataset(image, serve_options(chunks="128,128"))
    assert first.fanout is not second.fanout
    # A chunk of the coarsest level needs every level-0 chunk: made by the dataset's own workers.
    first.levels[-1].chunk_pixels((0, 0))
    assert fanout_threads() - before
    first.close()
    second.close()
    for thread in fanout_threads() - before:
        thread.join(5)
    assert not fanout_threads() - before
