"""Options that change what is served or where it is logged, each checked for its effect: ``--passthrough
off``, ``--debug``, the default log file, and the split of ``--cache-size`` between the daemon's caches."""

from __future__ import annotations

import os
from pathlib import Path

import numcodecs
import numpy as np
import pytest
import tifffile
import zarr
from mounting import force_unmount, is_mounted, mounted, require_fuse, zarrfs

TILE = 64


@pytest.fixture(scope="module")
def deflate_tiles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Deflate tiles at level 9: stored bytes that no zlib level-1 encode of the pixels reproduces."""
    path = tmp_path_factory.mktemp("passthrough") / "deflate.tif"
    rng = np.random.default_rng(3)
    gradient = np.add.outer(np.arange(200), np.arange(150)).astype(np.uint16) * 50
    image = gradient + rng.integers(0, 16, gradient.shape, dtype=np.uint16)
    tifffile.imwrite(path, image, tile=(TILE, TILE), compression="zlib", compressionargs={"level": 9})
    return path


def _stored_tile(path: Path, index: int) -> bytes:
    """The bytes of tile ``index`` as the file stores them (located by tifffile)."""
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        offset, count = page.dataoffsets[index], page.databytecounts[index]
    with open(path, "rb") as handle:
        handle.seek(offset)
        return handle.read(count)


@pytest.mark.parametrize("passthrough", ["auto", "off"])
def test_passthrough_off_serves_decoded_and_encoded_chunks_auto_the_stored_tiles(
    passthrough: str, deflate_tiles: Path, tmp_path: Path
) -> None:
    image = tifffile.imread(deflate_tiles)
    first_tile = np.ascontiguousarray(image[:TILE, :TILE].astype("<u2"))
    options = (
        "--chunks",
        f"{TILE},{TILE}",
        "--compressor",
        "zlib",
        "--ngff",
        "0.4",
        "--passthrough",
        passthrough,
    )
    with mounted(deflate_tiles, tmp_path / "mnt", *options) as mnt:
        served = (mnt / "0" / "0" / "0").read_bytes()
        if passthrough == "auto":
            assert served == _stored_tile(deflate_tiles, 0)
        else:
            assert served != _stored_tile(deflate_tiles, 0)
            assert served == bytes(numcodecs.Zlib(level=1).encode(first_tile))  # --clevel's default for zlib
        np.testing.assert_array_equal(zarr.open_array(mnt / "0", mode="r", zarr_format=2)[...], image)


def test_debug_logs_every_fuse_request_and_only_with_debug(deflate_tiles: Path, tmp_path: Path) -> None:
    for debug in (True, False):
        mnt = tmp_path / f"debug-{debug}" / "mnt"
        with mounted(deflate_tiles, mnt, "--chunks", "64,64", *(["--debug"] if debug else [])) as live:
            (live / ".zgroup").read_bytes()
            (live / "0" / "1" / "2").read_bytes()
        log = (mnt.parent / "zarrfs.log").read_text()
        requests = ["LOOKUP /.zgroup", "LOOKUP /0/1/2", "opcode: OPEN", "opcode: READ"]
        if debug:
            assert all(request in log for request in requests), log[-3000:]
        else:
            assert not any(request in log for request in requests), log[-3000:]
            assert "mount is live" in log


def _default_log_name(mountpoint: Path) -> str:
    return os.path.realpath(mountpoint).strip("/").replace("/", "_") + ".log"


@pytest.mark.parametrize("where", ["XDG_STATE_HOME", "HOME"])
def test_the_default_log_file_is_in_the_users_state_directory(
    where: str, deflate_tiles: Path, tmp_path: Path
) -> None:
    """Without --log-file: $XDG_STATE_HOME/zarrfs/<mount point>.log, else ~/.local/state/zarrfs/..."""
    require_fuse()
    home, state = tmp_path / "home", tmp_path / "state"
    home.mkdir()
    environment = {"HOME": str(home), "XDG_STATE_HOME": str(state) if where == "XDG_STATE_HOME" else ""}
    expected_directory = (
        state / "zarrfs" if where == "XDG_STATE_HOME" else home / ".local" / "state" / "zarrfs"
    )
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    try:
        result = zarrfs("mount", deflate_tiles, mnt, env=environment)
        assert result.returncode == 0, result.stderr
        assert (mnt / ".zgroup").read_bytes()
        unmounted = zarrfs("unmount", mnt)
        assert unmounted.returncode == 0, unmounted.stderr
    finally:
        force_unmount(mnt)
    assert not is_mounted(mnt)
    logs = list(expected_directory.iterdir())
    assert [path.name for path in logs] == [_default_log_name(mnt)]
    text = logs[0].read_text()
    assert "mount is live" in text and "unmounted" in text
    assert not (state.exists() and where == "HOME")


@pytest.mark.parametrize("cache_size", ["8MiB", "512MiB", "3GB"])
def test_the_cache_size_is_split_between_source_blocks_chunks_and_coarse_levels(
    cache_size: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README: 1/4 for decoded source blocks, the rest for served chunks, of which coarse computed levels
    (1/16 of level 0's pixels or fewer) get up to 3/4 apart; together exactly --cache-size."""
    import zarrfs.core.dataset as dataset_module
    from zarrfs.core.options import serve_options

    expected_total = {"8MiB": 8 * 2**20, "512MiB": 512 * 2**20, "3GB": 3 * 10**9}[cache_size]
    path = tmp_path / "image.tif"
    tifffile.imwrite(path, np.zeros((2048, 2048), np.uint16), tile=(256, 256))
    block_shares: list[int] = []
    real_open_source = dataset_module.open_source

    def recording_open_source(source: str, series: int, block_cache_bytes: int) -> object:
        block_shares.append(block_cache_bytes)
        return real_open_source(source, series, block_cache_bytes)

    monkeypatch.setattr(dataset_module, "open_source", recording_open_source)
    dataset = dataset_module.open_dataset(path, serve_options(chunks="128,128", cache_size=cache_size))
    try:
        chunks, coarse = dataset.cache.capacity_bytes, dataset.coarse_cache.capacity_bytes
        assert block_shares == [expected_total // 4]
        assert block_shares[0] + chunks + coarse == expected_total
        assert 0 < coarse <= 3 / 4 * (chunks + coarse)
        full = dataset.levels[0].shape[0] * dataset.levels[0].shape[1]
        small = [level for level in dataset.levels if 16 * level.shape[0] * level.shape[1] <= full]
        assert len(small) >= 2
        for level in dataset.levels:
            assert level.cache is (dataset.coarse_cache if level in small else dataset.cache), level.name
    finally:
        dataset.close()
