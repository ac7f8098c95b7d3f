"""What clients see first on a default mount: every one opens it without a warning, zarr-python 2 included,
and a copy of it is an ordinary tree (issue 11)."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from mounting import is_mounted, mounted, require_fuse, require_root, require_tools, zarrfs

pytestmark = pytest.mark.timeout(600)

# zarr-python 2 (and the numcodecs it needs, older than the shared environment's) installed once beside the
# test environment, and put first on a subprocess's path: numpy comes from the test environment.
ZARR2_PACKAGES = ("zarr<3", "numcodecs<0.16", "asciitree", "fasteners")
ZARR2_DIRECTORY = Path(sys.prefix) / "zarrfs-tests-zarr2"
# numcodecs 0.15's own exit handler calls a function it deprecated: not a warning about the mount.
NUMCODECS_EXIT_WARNING = "ignore:Call to deprecated function (or staticmethod) _destroy:DeprecationWarning"


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """A tiled OME-TIFF with two channels, three planes and physical sizes."""
    path = tmp_path_factory.mktemp("clients") / "image.ome.tif"
    data = np.random.default_rng(11).integers(0, 4096, (2, 3, 300, 260), dtype=np.uint16)
    metadata = {"axes": "CZYX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5, "PhysicalSizeZ": 2.0}
    tifffile.imwrite(path, data, metadata=metadata, tile=(128, 128))
    return path, tifffile.imread(path)


@pytest.fixture(scope="module")
def default_mount(image: tuple[Path, np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The image mounted with no option at all, on a name with the .zarr suffix."""
    with mounted(image[0], tmp_path_factory.mktemp("mount") / "image.ome.zarr") as mnt:
        yield mnt


def test_default_mount_serves_one_layout(default_mount: Path) -> None:
    names = set(os.listdir(default_mount))
    assert names == {".zgroup", ".zattrs", ".zmetadata", "0"}
    assert json.loads((default_mount / ".zattrs").read_text())["multiscales"][0]["version"] == "0.4"


def test_zarr_python_3_without_warnings(default_mount: Path, image: tuple[Path, np.ndarray]) -> None:
    expected = image[1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        group = zarr.open_group(default_mount, mode="r")
        assert list(group.keys()) == ["0"]
        assert [name for name, _ in group.members()] == ["0"]
        assert [name for name, _ in group.arrays()] == ["0"]
        np.testing.assert_array_equal(group["0"][...], expected)
        consolidated = zarr.open_consolidated(default_mount, mode="r")
        np.testing.assert_array_equal(consolidated["0"][...], expected)
    # The consolidated document is the per-array metadata, exactly.
    zmetadata = json.loads((default_mount / ".zmetadata").read_text())["metadata"]
    for name in (".zgroup", ".zattrs", "0/.zarray"):
        assert zmetadata[name] == json.loads((default_mount / name).read_text())


def test_ome_zarr_reader_without_warnings(default_mount: Path, image: tuple[Path, np.ndarray]) -> None:
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nodes = list(Reader(parse_url(str(default_mount)))())
        np.testing.assert_array_equal(np.asarray(nodes[0].data[0]), image[1])


def test_dask_without_warnings(default_mount: Path, image: tuple[Path, np.ndarray]) -> None:
    import dask.array as da

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(da.from_zarr(str(default_mount / "0")).compute(), image[1])


def test_bioio_picks_its_reader_by_the_suffix_without_warnings(
    default_mount: Path, image: tuple[Path, np.ndarray]
) -> None:
    """BioImage chooses bioio-ome-zarr by the .zarr suffix of the mount point, in a fresh interpreter whose
    every warning (imports included) is an error."""
    script = (
        "import sys, numpy as np\n"
        "from bioio import BioImage\n"
        "image = BioImage(sys.argv[1])\n"
        "print(type(image.reader).__module__)\n"
        "print(image.physical_pixel_sizes.Z, image.physical_pixel_sizes.X)\n"
        "np.save(sys.argv[2], image.data)\n"
    )
    saved = default_mount.parent / "bioio.npy"
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", script, str(default_mount), str(saved)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    module, sizes = result.stdout.splitlines()
    assert module.startswith("bioio_ome_zarr")
    assert sizes == "2.0 0.5"
    np.testing.assert_array_equal(np.load(saved), image[1][np.newaxis])  # bioio adds t


@pytest.fixture(scope="module")
def zarr2_path() -> Path:
    """A directory holding zarr-python 2, installed from the package index on first use."""
    marker = ZARR2_DIRECTORY / ".complete"
    if not marker.exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--upgrade", "--target",
             str(ZARR2_DIRECTORY), *ZARR2_PACKAGES],
            check=True,
            capture_output=True,
            timeout=600,
        )  # fmt: skip
        marker.touch()
    return ZARR2_DIRECTORY


def test_zarr_python_2_reads_the_default_mount(
    default_mount: Path, image: tuple[Path, np.ndarray], zarr2_path: Path
) -> None:
    script = (
        "import sys, numpy as np, zarr\n"
        "assert zarr.__version__.startswith('2.'), zarr.__version__\n"
        "group = zarr.open_group(sys.argv[1], mode='r')\n"
        "print(list(group.array_keys()), group.attrs['multiscales'][0]['version'])\n"
        "np.save(sys.argv[2], group['0'][...])\n"
        "np.save(sys.argv[3], zarr.open_consolidated(sys.argv[1], mode='r')['0'][...])\n"
    )
    saved = [default_mount.parent / "zarr2.npy", default_mount.parent / "zarr2-consolidated.npy"]
    result = subprocess.run(
        [sys.executable, "-W", "error", "-W", NUMCODECS_EXIT_WARNING, "-c", script, str(default_mount),
         *map(str, saved)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "PYTHONPATH": f"{zarr2_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['0'] 0.4"
    for path in saved:
        np.testing.assert_array_equal(np.load(path), image[1])


def test_a_clean_mount_prints_nothing(image: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    """No line on stderr, and nothing in the daemon's log but its own lines (no libfuse noise such as
    "Ignoring invalid max threads value")."""
    mountpoint = tmp_path / "image.ome.zarr"
    mountpoint.mkdir()
    log = tmp_path / "daemon.log"
    result = zarrfs("mount", image[0], mountpoint, "--log-file", log)
    try:
        assert result.returncode == 0, result.stderr
        assert (result.stdout, result.stderr) == ("", "")
        assert os.listdir(mountpoint)
    finally:
        zarrfs("unmount", mountpoint)
    lines = log.read_text().splitlines()
    assert lines and all(" zarrfs[" in line for line in lines), lines


def _mount_on_a_terminal(source: Path, mountpoint: Path, log: Path) -> tuple[int, str]:
    """``zarrfs mount`` with its stderr on a pseudo-terminal, as typed in a shell: its exit status and what it
    printed there."""
    main, secondary = pty.openpty()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "zarrfs", "mount", str(source), str(mountpoint), "--log-file", str(log)],
            stderr=secondary,
            stdout=subprocess.DEVNULL,
            timeout=120,
            check=False,
        )
    finally:
        os.close(secondary)
    printed = b""
    while select.select([main], [], [], 1.0)[0]:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # EIO: everything was read and the other side is closed
            break
        if not chunk:
            break
        printed += chunk
    os.close(main)
    return result.returncode, printed.decode().replace("\r\n", "\n")


def test_a_mount_point_without_the_zarr_suffix_gets_one_hint_on_a_terminal(
    image: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    require_fuse()
    hint = (
        "zarrfs: hint: bioio and napari choose their reader by the .zarr suffix: mount on a directory named "
        "like image.ome.zarr for them to open it\n"
    )
    for name, expected in (("image", hint), ("image.ome.zarr", "")):
        mountpoint = tmp_path / name
        mountpoint.mkdir()
        try:
            status, printed = _mount_on_a_terminal(image[0], mountpoint, tmp_path / f"{name}.log")
            assert (status, printed) == (0, expected)
            assert is_mounted(mountpoint)
        finally:
            zarrfs("unmount", mountpoint)


def test_a_copy_of_the_mount_is_removable_by_a_user(image: tuple[Path, np.ndarray], shared_dir: Path) -> None:
    """A user (uid 65534) copies the mount with `cp -r` and deletes the copy: it has the usual modes, not the
    read-only ones that made `rm -r` fail. The mount itself stays read-only."""
    require_root("to run cp and rm as another user")
    require_tools("setpriv")
    copies = shared_dir / "copies"
    copies.mkdir()
    os.chown(copies, 65534, 65534)
    with mounted(image[0], shared_dir / "image.ome.zarr", "-o", "allow_other") as mnt:
        assert (mnt.stat().st_mode & 0o777, (mnt / "0" / ".zarray").stat().st_mode & 0o777) == (0o755, 0o644)
        with pytest.raises(OSError) as raised:
            (mnt / ".zattrs").write_text("{}")
        assert raised.value.errno == 30  # EROFS
        user = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]
        copy = copies / "copy.ome.zarr"
        result = subprocess.run(
            [*user, "cp", "-r", str(mnt), str(copy)], capture_output=True, text=True, timeout=120, check=False
        )
        assert result.returncode == 0, result.stderr
        assert (copy / "0" / ".zarray").read_bytes() == (mnt / "0" / ".zarray").read_bytes()
    result = subprocess.run(
        [*user, "rm", "-r", str(copy)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert not copy.exists()
