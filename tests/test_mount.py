"""End to end through a real FUSE mount: every generated TIFF read by real Zarr clients equals tifffile."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from mounting import (
    force_unmount,
    is_mounted,
    mounted,
    require_fuse,
    require_root,
    require_tools,
    validate_ngff,
    zarrfs,
)
from tiff_cases import CASES, Case


@pytest.fixture(scope="module")
def case_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cases")


def _make_case(name: str, directory: Path) -> Case:
    return CASES[name](directory)


def _pick_case(name: str, directory: Path) -> Case:
    matches = [key for key in CASES if name in key]
    assert matches, f"no test case matching {name!r}"
    return CASES[matches[0]](directory)


# Default levels as README documents them; an explicit --clevel must be served as given.
DEFAULT_CLEVEL = {"blosc-lz4": 5, "blosc-zstd": 3, "zstd": 1, "zlib": 1}
EXPLICIT_CLEVEL = {"blosc-lz4": 9, "blosc-zstd": 7, "zstd": 5, "zlib": 6}


def _expected_codecs(compressor: str, level: int | None, itemsize: int) -> tuple[object, list[object]]:
    """The v2 ``compressor`` and the v3 ``codecs`` that ``--compressor``/``--clevel`` ask for, spelled out
    here from the Zarr specifications (never taken from zarrfs)."""
    raw: list[object] = [{"name": "bytes", "configuration": {"endian": "little"}}]
    if compressor == "none":
        return None, raw
    if compressor.startswith("blosc-"):
        cname = compressor.removeprefix("blosc-")
        v2 = {"id": "blosc", "cname": cname, "clevel": level, "shuffle": 1}
        v3 = {"cname": cname, "clevel": level, "shuffle": "shuffle", "typesize": itemsize, "blocksize": 0}
        return v2, [*raw, {"name": "blosc", "configuration": v3}]
    if compressor == "zstd":
        zstd = {"name": "zstd", "configuration": {"level": level, "checksum": False}}
        return {"id": "zstd", "level": level}, [*raw, zstd]
    assert compressor == "zlib"  # Zarr v3 has no zlib codec: served as gzip
    return {"id": "zlib", "level": level}, [*raw, {"name": "gzip", "configuration": {"level": level}}]


def _encoded(compressor: str, level: int | None, pixels: np.ndarray) -> tuple[bytes, bytes]:
    """The bytes of the v2 and of the v3 chunk file of ``pixels``, encoded here with the requested codec,
    level and shuffle by numcodecs / gzip (each deterministic)."""
    import gzip

    import numcodecs

    raw = pixels.tobytes()
    if compressor == "none":
        return raw, raw
    if compressor.startswith("blosc-"):
        cname = compressor.removeprefix("blosc-")
        blosc = numcodecs.Blosc(cname=cname, clevel=level, shuffle=numcodecs.Blosc.SHUFFLE)
        data = bytes(blosc.encode(pixels))
        return data, data
    if compressor == "zstd":
        data = bytes(numcodecs.Zstd(level=level).encode(raw))
        return data, data
    return bytes(numcodecs.Zlib(level=level).encode(raw)), gzip.compress(raw, compresslevel=level, mtime=0)


@pytest.mark.parametrize("clevel", ["default", "explicit"])
@pytest.mark.parametrize("compressor", ["none", "blosc-lz4", "blosc-zstd", "zstd", "zlib"])
def test_served_codecs_are_those_the_options_ask_for_with_exact_sizes(
    compressor: str, clevel: str, case_dir: Path, tmp_path: Path
) -> None:
    options = ["--compressor", compressor, "--chunks", "128,128", "--ngff", "all"]
    level = None
    if compressor != "none":
        level = (DEFAULT_CLEVEL if clevel == "default" else EXPLICIT_CLEVEL)[compressor]
        if clevel == "explicit":
            options += ["--clevel", str(level)]
    case = _pick_case("tiled_zlib", case_dir)
    expected_v2, expected_v3 = _expected_codecs(compressor, level, case.expected.dtype.itemsize)
    first_chunk = np.zeros((128, 128), case.expected.dtype.newbyteorder("<"))
    first_chunk[...] = case.expected[:128, :128]
    bytes_v2, bytes_v3 = _encoded(compressor, level, first_chunk)
    with mounted(case.path, tmp_path / "mnt", *options) as mnt:
        assert json.loads((mnt / "0" / ".zarray").read_text())["compressor"] == expected_v2
        assert json.loads((mnt / "0" / "zarr.json").read_text())["codecs"] == expected_v3
        # Encoded as announced: codec, level and shuffle (blosc's header names its codec, not its level).
        assert (mnt / "0" / "0" / "0").read_bytes() == bytes_v2
        assert (mnt / "0" / "c" / "0" / "0").read_bytes() == bytes_v3
        chunk_files = [path for path in (mnt / "0").rglob("*") if path.is_file() and "." not in path.name]
        assert len(chunk_files) == 2 * len([path for path in (mnt / "0" / "c").rglob("*") if path.is_file()])
        for path in chunk_files[:40]:
            # st_size must equal the bytes read: tensorstore reads exactly st_size, zarr reads to EOF.
            assert path.stat().st_size == len(path.read_bytes())
        for zarr_format in (2, 3):
            served = zarr.open_array(mnt / "0", mode="r", zarr_format=zarr_format)[...]
            np.testing.assert_array_equal(served, case.expected)


def test_clients_tensorstore_dask_ome_zarr_and_validation(case_dir: Path, tmp_path: Path) -> None:
    import dask.array
    import tensorstore
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader
    from ome_zarr_models.v04.image import Image

    case = _pick_case("ome_5d", case_dir)
    with mounted(case.path, tmp_path / "mnt", "--compressor", "blosc-lz4") as mnt:
        store = tensorstore.open(
            {"driver": "zarr", "kvstore": {"driver": "file", "path": str(mnt / "0")}}
        ).result()
        np.testing.assert_array_equal(store.read().result(), case.expected)

        lazy = dask.array.from_zarr(str(mnt / "0"))
        np.testing.assert_array_equal(lazy.compute(scheduler="threads"), case.expected)

        nodes = list(Reader(parse_url(str(mnt)))())
        image = nodes[0]
        np.testing.assert_array_equal(np.asarray(image.data[0]), case.expected)
        assert [axis["name"] for axis in image.metadata["axes"]] == list(case.axes)

        model = Image.from_zarr(zarr.open_group(mnt, mode="r", zarr_format=2))
        assert model.attributes.multiscales[0].datasets[0].path == "0"
        validate_ngff(mnt)


def test_every_write_is_refused_with_erofs(case_dir: Path, tmp_path: Path) -> None:
    case = _pick_case("tiled_zlib", case_dir)
    source_bytes, source_mtime = case.path.read_bytes(), case.path.stat().st_mtime_ns
    with mounted(case.path, tmp_path / "mnt") as mnt:
        chunk = next(path for path in (mnt / "0").rglob("*") if path.is_file() and path.name != ".zarray")
        attempts = {
            "write": lambda: open(mnt / ".zgroup", "r+b"),  # noqa: SIM115
            "create": lambda: open(mnt / "new", "wb"),  # noqa: SIM115
            "mkdir": lambda: os.mkdir(mnt / "dir"),
            "unlink": lambda: os.unlink(chunk),
            "rmdir": lambda: os.rmdir(mnt / "0"),
            "rename": lambda: os.rename(mnt / ".zgroup", mnt / "moved"),
            "truncate": lambda: os.truncate(chunk, 0),
            "chmod": lambda: os.chmod(chunk, 0o777),
            "setxattr": lambda: os.setxattr(chunk, "user.tag", b"x"),
            "symlink": lambda: os.symlink(chunk, mnt / "link"),
            "link": lambda: os.link(chunk, mnt / "hard"),
        }
        for name, attempt in attempts.items():
            with pytest.raises(OSError) as raised:
                attempt()
            assert raised.value.errno == errno.EROFS, name
    assert case.path.read_bytes() == source_bytes
    assert case.path.stat().st_mtime_ns == source_mtime


def _corrupt_one_tile(source: Path, target: Path) -> tuple[int, int]:
    """Copy ``source`` with the compressed bytes of its second tile overwritten; return that tile's origin."""
    data = bytearray(source.read_bytes())
    with tifffile.TiffFile(source) as tif:
        page = tif.pages[0]
        offset, count = page.dataoffsets[1], page.databytecounts[1]
        tile_width = page.tilewidth
    data[offset : offset + count] = b"\xff" * count
    target.write_bytes(bytes(data))
    return 0, tile_width


def test_a_corrupt_tile_gives_eio_for_its_chunk_only(case_dir: Path, tmp_path: Path) -> None:
    case = _pick_case("tiled_zlib", case_dir)
    broken = tmp_path / "broken.tif"
    row, col = _corrupt_one_tile(case.path, broken)
    with tifffile.TiffFile(broken) as tif:
        tile = (tif.pages[0].tilelength, tif.pages[0].tilewidth)
    with mounted(broken, tmp_path / "mnt", "--chunks", ",".join(map(str, tile))) as mnt:
        bad_chunk = mnt / "0" / str(row // tile[0]) / str(col // tile[1])
        with pytest.raises(OSError) as raised:
            bad_chunk.read_bytes()
        assert raised.value.errno == errno.EIO
        good = zarr.open_array(mnt / "0", mode="r")[: tile[0], : tile[1]]
        np.testing.assert_array_equal(good, case.expected[: tile[0], : tile[1]])
        with pytest.raises(OSError):  # still failing, still serving
            bad_chunk.read_bytes()
        assert (mnt / ".zgroup").read_bytes()
    log = (tmp_path / "zarrfs.log").read_text()
    assert "source read failed" in log


def test_large_chunk_directories_list_completely(case_dir: Path, tmp_path: Path) -> None:
    case = _pick_case("tiled_zlib", case_dir)
    height, width = case.expected.shape[-2:]
    # One-row chunks (the smallest zarrfs accepts are 256 bytes): one directory entry per image row.
    with mounted(case.path, tmp_path / "mnt", "--chunks", "1,128", "--ngff", "all") as mnt:
        rows = os.listdir(mnt / "0")
        assert sorted(set(rows) - {".zarray", "zarr.json", "c"}, key=int) == [str(i) for i in range(height)]
        assert len(os.listdir(mnt / "0" / "c")) == height
        columns = [str(i) for i in range(-(-width // 128))]
        assert sorted(os.listdir(mnt / "0" / "0"), key=int) == columns


def test_foreground_mount_unmounts_cleanly_on_sigterm_and_sigint(case_dir: Path, tmp_path: Path) -> None:
    require_fuse()
    case = _pick_case("tiled_zlib", case_dir)
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        mnt = tmp_path / f"mnt{signal_number}"
        mnt.mkdir()
        process = subprocess.Popen(
            [sys.executable, "-m", "zarrfs", "mount", "-f", str(case.path), str(mnt)],
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        while not is_mounted(mnt) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert is_mounted(mnt)
        assert (mnt / ".zgroup").read_text().strip().startswith("{")
        process.send_signal(signal_number)
        assert process.wait(timeout=30) == 0
        assert not is_mounted(mnt)
        assert "mount is live" in process.stderr.read()


def test_info_describes_the_hierarchy_without_mounting(case_dir: Path) -> None:
    case = _pick_case("ome_5d", case_dir)
    result = zarrfs("info", case.path, "--compressor", "zstd", "--ngff", "all")
    assert result.returncode == 0, result.stderr
    assert f"axes:      {', '.join(case.axes)}" in result.stdout
    assert f"shape {case.expected.shape}" in result.stdout
    assert "codec:     zstd (level 1)" in result.stdout
    assert "NGFF 0.4 on Zarr v2" in result.stdout and "NGFF 0.5 on Zarr v3" in result.stdout


def test_fuse_options_are_passed_on_and_other_users_are_kept_out_by_default(
    case_dir: Path, shared_dir: Path
) -> None:
    require_root("to read the mount as another user")
    require_tools("setpriv")
    case = _pick_case("tiled_zlib", case_dir)

    def read_as_nobody(path: Path) -> subprocess.CompletedProcess[str]:
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "cat", str(path)]
        return subprocess.run(command, capture_output=True, text=True, check=False)

    with mounted(case.path, shared_dir / "private") as mnt:
        denied = read_as_nobody(mnt / ".zgroup")
        assert denied.returncode != 0 and "Permission denied" in denied.stderr
    with mounted(case.path, shared_dir / "shared", "-o", "allow_other") as mnt:
        allowed = read_as_nobody(mnt / ".zgroup")
        assert allowed.returncode == 0 and json.loads(allowed.stdout) == {"zarr_format": 2}


def test_a_request_over_the_time_limit_gets_eio_and_the_daemon_keeps_serving(tmp_path: Path) -> None:
    # One huge LZW strip: producing any chunk means decoding all of it (~0.4 s here), far longer than 50 ms.
    source = tmp_path / "one_strip.tif"
    image = np.random.default_rng(0).integers(0, 4000, (6000, 6000), dtype=np.uint16)
    tifffile.imwrite(source, image, compression="lzw", rowsperstrip=6000)
    with mounted(source, tmp_path / "mnt", "--timeout", "0.05", "--levels", "1", "--ngff", "0.4") as mnt:
        chunk = mnt / "0" / "0" / "0"
        with pytest.raises(OSError) as raised:
            chunk.read_bytes()
        assert raised.value.errno == errno.EIO
        assert json.loads((mnt / ".zgroup").read_text()) == {"zarr_format": 2}
        # The slow decode went on in the background and filled the cache: the chunk is served now.
        deadline = time.monotonic() + 30
        while True:
            try:
                data = chunk.read_bytes()
                break
            except OSError:
                assert time.monotonic() < deadline, "chunk never became readable"
                time.sleep(0.2)
        chunks = json.loads((mnt / "0" / ".zarray").read_text())["chunks"]
        served = np.frombuffer(data, dtype="<u2").reshape(chunks)
        np.testing.assert_array_equal(served, image[: chunks[0], : chunks[1]])
    assert "took longer than 0.05 s" in (tmp_path / "zarrfs.log").read_text()


def test_with_every_worker_stuck_metadata_and_lookups_are_still_served(tmp_path: Path) -> None:
    import threading

    from zarrfs.frontends.fuse_ops import WORKER_THREADS

    # One huge LZW strip (~1 s to decode): every chunk waits for it, so readers of many chunks occupy every
    # worker, and more wait in the queue. Calls that need no chunk made must not queue behind them.
    source = tmp_path / "one_strip.tif"
    image = np.random.default_rng(0).integers(0, 4000, (8000, 8000), dtype=np.uint16)
    tifffile.imwrite(source, image, compression="lzw", rowsperstrip=8000)
    options = ("--timeout", "0.2", "--levels", "1", "--ngff", "0.4", "--chunks", "500,500")
    with mounted(source, tmp_path / "mnt", *options) as mnt:
        errors: list[int] = []

        def read_chunk(row: int) -> None:
            try:
                (mnt / "0" / str(row) / "0").read_bytes()
            except OSError as error:
                errors.append(error.errno or 0)

        readers = [threading.Thread(target=read_chunk, args=(row,)) for row in range(2 * WORKER_THREADS)]
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join()
        assert errors and set(errors) == {errno.EIO}  # the time limit held
        # Queued behind the stuck workers, these would get EIO too.
        assert os.stat(mnt / "0" / "15" / "15").st_size == 500 * 500 * 2
        assert json.loads((mnt / "0" / ".zarray").read_text())["chunks"] == [500, 500]
    assert "took longer than 0.2 s" in (tmp_path / "zarrfs.log").read_text()


def _daemon_pid(mountpoint: Path) -> int:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            # The daemon is the forked `zarrfs mount` command, once that has returned.
            if b"mount" in command and str(mountpoint).encode() in command:
                return int(entry.name)
    raise AssertionError(f"no daemon found for {mountpoint}")


def _wait_until_waiting_on_fuse(process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """Wait until ``process`` sleeps in the kernel waiting for a FUSE answer (its wchan says so), however long
    it takes to start and get there, and fail if it ends first or never does."""
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, "the reader ended instead of waiting for the hung daemon"
        try:
            waiting_in = Path(f"/proc/{process.pid}/wchan").read_text()
        except OSError:
            waiting_in = ""
        if waiting_in == "request_wait_answer":
            return
        assert time.monotonic() < deadline, f"the reader never waited on the daemon (wchan {waiting_in!r})"
        time.sleep(0.02)


def test_unmount_returns_while_the_daemon_hangs_with_a_reader_stuck_inside(
    case_dir: Path, tmp_path: Path
) -> None:
    require_fuse()
    case = _pick_case("tiled_zlib", case_dir)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    assert zarrfs("mount", case.path, mnt, "--levels", "1").returncode == 0
    pid = _daemon_pid(mnt)
    os.kill(pid, signal.SIGSTOP)  # a daemon that answers nothing: every request hangs
    try:
        reader = subprocess.Popen(
            [sys.executable, "-c", f"open({str(mnt / '0' / '0' / '0')!r}, 'rb').read()"]
        )
        _wait_until_waiting_on_fuse(reader)  # stuck inside the mount
        started = time.monotonic()
        busy = zarrfs("unmount", mnt, timeout=60)
        assert busy.returncode == 1 and "is busy" in busy.stderr and "zarrfs unmount --lazy" in busy.stderr
        lazy = zarrfs("unmount", "--lazy", mnt, timeout=60)
        assert lazy.returncode == 0, lazy.stderr
        assert time.monotonic() - started < 40
        assert not is_mounted(mnt)
    finally:
        os.kill(pid, signal.SIGKILL)
        force_unmount(mnt)
    assert reader.wait(timeout=30) != 0  # the stuck read failed instead of hanging forever
