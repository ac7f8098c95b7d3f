"""The in-process store on a dask.distributed cluster: a store pickles as what opened it and is reopened once
per worker process; a LocalCluster of 2 worker processes sums the store and a real mount as numpy sums the
source (tifffile the oracle)."""

from __future__ import annotations

import inspect
import os
import pickle
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dask
import dask.array as da
import distributed
import numpy as np
import pytest
import tifffile
import zarr
from mounting import force_unmount, is_mounted, mounted, require_fuse, require_tools

import zarrfs
from zarrfs.frontends import store as store_module
from zarrfs.frontends.store import REOPENED_STORES_KEPT, ZarrfsStore

CHUNKS = "512,512"  # level 0 of the image below is a 2x3x3 grid of chunks, level 1 2x2x2
LEVELS = ("0", "1")


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An OME-TIFF of 2 channels of 1500x1300 pixels, with level 1 stored in SubIFDs."""
    path = tmp_path_factory.mktemp("cluster") / "image.ome.tif"
    base = np.random.default_rng(14).integers(0, 2**16, (2, 1500, 1300), dtype=np.uint16)
    options = {"tile": (256, 256), "compression": "zlib"}
    with tifffile.TiffWriter(path) as writer:
        writer.write(base, subifds=1, metadata={"axes": "CYX"}, **options)
        writer.write(base[:, ::2, ::2], subfiletype=1, **options)
    return path


def source_level(path: Path, level: str) -> np.ndarray:
    with tifffile.TiffFile(path) as tiff:
        return tiff.series[0].levels[int(level)].asarray()


@pytest.fixture(scope="module")
def client() -> Iterator[distributed.Client]:
    """One cluster for the module: starting one takes seconds."""
    with (
        distributed.LocalCluster(
            n_workers=2, processes=True, threads_per_worker=2, dashboard_address=None, silence_logs=40
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def sums(array: da.Array) -> tuple[np.ndarray, np.ndarray]:
    """Sums along x and along y: a pixel out of place along either shows."""
    return dask.compute(array.sum(axis=-1, dtype=np.uint64), array.sum(axis=-2, dtype=np.uint64))


def assert_sums_equal(array: da.Array, expected: np.ndarray) -> None:
    assert array.shape == expected.shape and array.numblocks[-2:] != (1, 1)  # several chunks per plane
    along_x, along_y = sums(array)
    np.testing.assert_array_equal(along_x, expected.sum(axis=-1, dtype=np.uint64))
    np.testing.assert_array_equal(along_y, expected.sum(axis=-2, dtype=np.uint64))


def test_workers_sum_the_in_process_store_as_numpy_sums_the_source(
    image: Path, client: distributed.Client
) -> None:
    store = zarrfs.open_store(image, chunks=CHUNKS)
    for level in LEVELS:
        assert_sums_equal(
            da.from_zarr(zarr.open_array(store, path=level, mode="r")), source_level(image, level)
        )

    def opened_stores() -> list[bool]:
        from zarrfs.frontends import store

        return [copy._served is not None for copy in store._reopened.values()]

    # Every worker that ran tasks opened the source once, for all of its tasks and both levels.
    per_worker = client.run(opened_stores)
    assert sorted(per_worker.values()) == [[True], [True]], per_worker
    store.close()


def test_workers_sum_a_mount_as_numpy_sums_the_source(
    image: Path, client: distributed.Client, tmp_path: Path
) -> None:
    with mounted(image, tmp_path / "image.ome.zarr", "--chunks", CHUNKS) as mountpoint:
        for level in LEVELS:
            assert_sums_equal(da.from_zarr(str(mountpoint / level)), source_level(image, level))


def test_a_worker_without_the_source_says_so_in_one_line_and_tries_again_later(
    image: Path, client: distributed.Client, tmp_path: Path
) -> None:
    node = tmp_path / "node"
    node.mkdir()
    copy = node / "copy.ome.tif"
    shutil.copy(image, copy)
    array = da.from_zarr(zarr.open_array(zarrfs.open_store(copy, chunks=CHUNKS), path="0", mode="r"))
    node.rename(tmp_path / "gone")  # as on a node where it is not (the file itself unchanged)
    with pytest.raises(zarrfs.SourceError) as raised:
        array.sum().compute()
    assert str(raised.value) == (
        f"the zarrfs store of {copy} cannot be reopened on {socket.gethostname()}: source not found: {copy}"
    )
    (tmp_path / "gone").rename(node)
    assert array.sum(dtype=np.uint64).compute() == source_level(image, "0").sum(dtype=np.uint64)


# ----------------------------------------------------------------------------------------------------------
# README "On a cluster": its job script and its dask-jobqueue example, as they stand there

README = Path(__file__).parent.parent / "README.md"


def readme_block(language: str, containing: str) -> str:
    """The one code block of README's "On a cluster" section in ``language`` that holds ``containing``."""
    section = README.read_text().split("\n## On a cluster\n", 1)[1].split("\n## ", 1)[0]
    [block] = [
        block for block in re.findall(f"```{language}\n(.*?)```", section, re.S) if containing in block
    ]
    return block


def run_job_script(source: Path, mountpoint: Path, directory: Path) -> subprocess.CompletedProcess[str]:
    """The README's Slurm job script run by bash as sbatch would (its #SBATCH lines are comments), with this
    interpreter's environment first on PATH for ``zarrfs`` and ``python``."""
    script = directory / "job.sh"
    script.write_text(readme_block("bash", "#SBATCH"))
    bin_dir = Path(sys.executable).parent
    assert (bin_dir / "zarrfs").exists(), f"no zarrfs command beside {sys.executable}"
    environment = {
        **os.environ,
        "SRC": str(source),
        "MNT": str(mountpoint),
        "SLURM_JOB_ID": "14",
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
    }
    return subprocess.run(
        ["bash", str(script)], env=environment, capture_output=True, text=True, timeout=120, check=False
    )


def test_the_readme_job_script_mounts_computes_and_unmounts(image: Path, tmp_path: Path) -> None:
    require_fuse()
    require_tools("mountpoint")
    mountpoint = tmp_path / "node" / "section.ome.zarr"  # the script makes it
    try:
        result = run_job_script(image, mountpoint, tmp_path)
        assert (result.returncode, result.stderr) == (0, "")
        assert result.stdout == f"{source_level(image, '0').sum(dtype=np.uint64)}\n"
        assert not is_mounted(mountpoint)
        log = Path(f"{mountpoint}.log").read_text()
        assert "mount is live" in log and f"unmounted {mountpoint}" in log  # the daemon ended
    finally:
        force_unmount(mountpoint)


def test_the_readme_job_script_stops_when_the_mount_fails(tmp_path: Path) -> None:
    require_fuse()
    require_tools("mountpoint")
    missing = tmp_path / "missing.ome.tif"
    mountpoint = tmp_path / "node" / "section.ome.zarr"
    result = run_job_script(missing, mountpoint, tmp_path)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"zarrfs: error: source not found: {missing}",
        f"zarrfs mount failed: see {mountpoint}.log",
    ]
    assert not is_mounted(mountpoint)


@pytest.mark.filterwarnings("ignore:Port 8787 is already in use")  # the dashboard of the SLURMCluster
def test_the_readme_dask_jobqueue_example(
    image: Path,
    client: distributed.Client,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Its SLURMCluster is made for real (a Slurm job script is all it makes before ``scale``) and its
    ``scale`` call checked against the real signature; the lines from ``open_store`` on run as written (the
    image's path replaced) on this module's LocalCluster."""
    from dask_jobqueue import SLURMCluster

    example = readme_block("python", "SLURMCluster")
    cluster_part, store_part = example.split("\nstore = ", 1)
    scale = inspect.signature(SLURMCluster.scale)
    scaled: list[inspect.BoundArguments] = []
    namespace: dict[str, object] = {}
    with monkeypatch.context() as patch:
        patch.setattr(
            SLURMCluster, "scale", lambda *args, **kwargs: scaled.append(scale.bind(*args, **kwargs))
        )
        patch.setattr(distributed, "Client", lambda cluster: client)
        exec(cluster_part, namespace)
    cluster = namespace["cluster"]
    assert isinstance(cluster, SLURMCluster)
    try:
        job_script = cluster.job_script()
        assert "#SBATCH -t 02:00:00" in job_script and "--nworkers 2" in job_script, job_script
    finally:
        cluster.close()
    assert [bound.arguments.get("jobs") for bound in scaled] == [4]
    source = re.search(r'open_store\("([^"]+)"', store_part)
    assert source is not None
    exec("store = " + store_part.replace(source.group(1), str(image)), namespace)
    assert capsys.readouterr().out == f"{source_level(image, '0').sum(dtype=np.uint64)}\n"


# ----------------------------------------------------------------------------------------------------------
# Pickling, without a cluster

# Run in a fresh interpreter, in another working directory: unpickle the zarr array twice, read it through
# both copies, save what was read, and report how many times the source was opened there.
UNPICKLE = """
import pickle, sys
import numpy as np
from zarrfs.frontends import store
opened = []
open_served = store.open_served
store.open_served = lambda *args: opened.append(args) or open_served(*args)
pickled = open(sys.argv[1], "rb").read()
first, second = pickle.loads(pickled), pickle.loads(pickled)
assert first.store == second.store and hash(first.store) == hash(second.store)
try:
    np.save(sys.argv[2], first[...])
    np.testing.assert_array_equal(second[...], first[...])
except Exception as error:
    print(type(error).__name__, error)
print("opened", len(opened))
"""


def unpickle_elsewhere(pickled: bytes, directory: Path) -> tuple[list[str], Path]:
    """The lines ``UNPICKLE`` printed, and where it saved the array it read."""
    directory.mkdir()
    (directory / "array.pickle").write_bytes(pickled)
    result = subprocess.run(
        [sys.executable, "-c", UNPICKLE, "array.pickle", "array.npy"],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines(), directory / "array.npy"


def test_a_pickled_store_reads_the_source_in_a_fresh_process_opened_once(
    image: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(image.parent)
    store = zarrfs.open_store(image.name, chunks=CHUNKS)  # relative: the other process works elsewhere
    pickled = pickle.dumps(store)
    assert len(pickled) < 2000  # what opens it, not what it holds
    lines, saved = unpickle_elsewhere(
        pickle.dumps(zarr.open_array(store, path="1", mode="r")), tmp_path / "a"
    )
    assert lines == ["opened 1"]
    np.testing.assert_array_equal(np.load(saved), source_level(image, "1"))
    store.close()


def test_a_store_unpickled_after_its_source_was_replaced_refuses_to_serve(
    image: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "copy.ome.tif"
    shutil.copy(image, copy)
    pickled = pickle.dumps(zarr.open_array(zarrfs.open_store(copy, chunks=CHUNKS), path="0", mode="r"))
    inode = copy.stat().st_ino
    replacement = tmp_path / "replacement.ome.tif"
    shutil.copy(image, replacement)  # the same pixels, but another file: no longer the one that was opened
    replacement.rename(copy)
    lines, saved = unpickle_elsewhere(pickled, tmp_path / "a")
    assert lines == [
        f"SourceError the zarrfs store of {copy} cannot be reopened on {socket.gethostname()}: source {copy} "
        f"was replaced by another file (inode {inode} -> {copy.stat().st_ino}) since the store was opened",
        "opened 1",
    ]
    assert not saved.exists()


@pytest.mark.parametrize("change", ["none", "a member replaced", "a member added"])
def test_a_sequence_store_unpickled_elsewhere_serves_only_the_files_it_was_opened_with(
    change: str, tmp_path: Path
) -> None:
    """A sequence checks its members itself (the watch leaves them out): the fingerprint covers them."""
    sections = tmp_path / "sections"
    sections.mkdir()
    planes = np.random.default_rng(9).integers(0, 2**16, (3, 40, 50), dtype=np.uint16)
    for index, plane in enumerate(planes):
        tifffile.imwrite(sections / f"s{index}.tif", plane)
    pattern = str(sections / "s*.tif")
    pickled = pickle.dumps(zarr.open_array(zarrfs.open_store(pattern), path="0", mode="r"))
    if change == "a member replaced":
        tifffile.imwrite(tmp_path / "new.tif", planes[1])  # the same pixels, another file
        (tmp_path / "new.tif").rename(sections / "s1.tif")
    elif change == "a member added":
        tifffile.imwrite(sections / "s3.tif", planes[0])
    lines, saved = unpickle_elsewhere(pickled, tmp_path / "a")
    if change == "none":
        assert lines == ["opened 1"]
        np.testing.assert_array_equal(np.load(saved), planes)
        return
    files = len(list(sections.iterdir()))
    host = socket.gethostname()
    assert lines == [
        f"SourceError the zarrfs store of {pattern} cannot be reopened on {host}: its {files} files are not "
        "those it was opened with: one was added, removed, replaced or modified since",
        "opened 1",
    ]


def test_unpickled_stores_equal_the_original_and_stay_one_per_opening(image: Path) -> None:
    store = zarrfs.open_store(image, chunks=CHUNKS)
    copy = pickle.loads(pickle.dumps(store))
    assert copy == store and hash(copy) == hash(store) and copy is not store
    assert pickle.loads(pickle.dumps(store)) is copy  # one per process
    other = zarrfs.open_store(image, chunks="256,256")
    assert other != store
    assert zarrfs.open_store(image, chunks=CHUNKS) == store  # the same file, opened the same way
    for opened in (store, other):
        opened.close()
    copy.close()
    assert pickle.loads(pickle.dumps(store)) is not copy  # a closed copy is not handed out again


def test_unpickling_opens_nothing_and_keeps_a_bounded_number_of_stores(
    image: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stores = [zarrfs.open_store(image, levels=levels) for levels in range(1, REOPENED_STORES_KEPT + 3)]
    pickled = [pickle.dumps(store) for store in stores]
    monkeypatch.setattr(store_module, "open_served", lambda *args: pytest.fail("opened when unpickled"))
    monkeypatch.setattr(store_module, "_reopened", type(store_module._reopened)())
    copies = [pickle.loads(data) for data in pickled]  # a dask scheduler unpickles graphs it never runs
    assert list(store_module._reopened.values()) == copies[-REOPENED_STORES_KEPT:]
    assert repr(copies[0]) == f"ZarrfsStore({str(image)!r})"
    for store in stores:
        store.close()


def test_a_store_made_from_a_dataset_says_why_it_cannot_be_pickled(image: Path) -> None:
    from zarrfs.core import open_dataset

    store = ZarrfsStore(open_dataset(image))
    with pytest.raises(TypeError, match=re.escape("only a store made by zarrfs.open_store can be pickled")):
        pickle.dumps(store)
    store.close()
