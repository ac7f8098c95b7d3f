"""The generated images at each run size, and writing them once into the work directory: TIFF images a-d
(issue 4), one image per other format zarrfs reads, e-l (issue 12), and the plane served over HTTP, w
(issue 13)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from .formats import (
    NIFTI_EVERY,
    REPO_SIDE,
    SEQUENCE_GLOB,
    write_cog,
    write_hdf5,
    write_nifti,
    write_repository,
    write_sequence,
    write_sparse_hdf5,
    write_tensorstore,
    write_tiled_stack,
)
from .synth import TILE, Field, plane_tiles, slide_tiles, sparse_tiles, stack_planes

# Bumped when the pixels change, so that images written by an older generator are written again.
GENERATOR_VERSION = 1
GIB = 2**30
MB = 1e6


@dataclass(frozen=True)
class Sizes:
    label: str
    plane: int  # (a) side of the square 2-D image
    stack: tuple[int, int, int]  # (b) z, y, x
    slide: int  # (c) side of level 0
    slide_levels: int  # (c) stored levels, level 0 included
    sparse: int  # (d) side
    sparse_block: int  # (d) side of the written central block, in tiles
    rss_cache: str  # --cache-size of the mount whose peak RSS is measured (image a must be >= 4x)
    random_chunks: int  # chunk files per random-access pass
    suffix: str  # file name suffix, so that quick and full images live side by side
    volume: tuple[int, int, int]  # (e, g-k) z, y, x of the volume each other format stores
    volume_cache: str  # (e, g-k) --cache-size of their reads through the mount (the volume is >= 4x)
    sparse_volume: tuple[int, int, int]  # (f) z, y, x of the sparse HDF5 dataset
    many_files: int  # (l) files of the sequence whose mount and first chunk are timed
    http_plane: int  # (w) side of the plane served over HTTP
    wrk_seconds: int  # each wrk run
    repo_images: int  # (r) images of the repository tree
    repo_dirs: int  # (r) its directories
    repo_listed: int  # (r) images of the directory whose listing is timed (the rest share the others)
    cog_side: int  # (u) side of the sparse remote COG
    cog_block: int  # (u) side of its written central block, in tiles
    remote_stack: tuple[int, int, int]  # (v) z, y, x of the OME-TIFF read whole over HTTP


# 20 GB of logical uint16 pixels, of which four 1024x1024 planes are stored.
SPARSE_VOLUME = (80, 16384, 8192)
# 80 GB of logical uint16 pixels (784x784 tiles of 256): the remote COG (issue 15).
COG_SIDE = 200704
FULL = Sizes(
    "full", 36864, (128, 2048, 2048), 24576, 6, 163840, 32, "512MiB", 400, "",
    (64, 2048, 2048), "128MiB", SPARSE_VOLUME, 2000, 8192, 10,
    20000, 200, 1000, COG_SIDE, 8, (128, 2048, 2048),
)  # fmt: skip
QUICK = Sizes(
    "quick", 8192, (16, 1024, 1024), 4096, 4, 163840, 8, "32MiB", 150, "-quick",
    (16, 1024, 1024), "8MiB", SPARSE_VOLUME, 2000, 4096, 4,
    400, 4, 100, 65536, 4, (16, 1024, 1024),
)  # fmt: skip


@dataclass
class Image:
    key: str
    title: str
    path: Path
    kind: str  # "compressed" or "uncompressed": which full-read goal applies
    shape: tuple[int, ...]  # level 0 as zarrfs serves it (canonical axes)
    dtype: str
    axes: str
    description: str
    full_read: bool = True  # False for the virtual images (too big, or only their mount is timed)
    params: dict[str, Any] = field(default_factory=dict)
    format: str = "tiff"  # "tiff", "hdf5", "nifti", "zarr", "n5", "sequence", "http", "repository", "remote"
    reference: str = "tifffile"  # the tool (results.TOOLS) whose full read the mount's is compared with
    cache: str | None = None  # --cache-size of the full reads through the mount (None: zarrfs's default)
    pattern: str = ""  # a file sequence: the glob of its files in ``path`` (a directory)

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * np.dtype(self.dtype).itemsize

    @property
    def source(self) -> Path:
        """What zarrfs is given: the file or directory, or a sequence's glob."""
        return self.path / self.pattern if self.pattern else self.path

    def files(self) -> list[Path]:
        """Every file the image is stored in."""
        if self.path.is_dir():
            return sorted(f for f in self.path.rglob("*") if f.is_file())
        return [self.path]

    @property
    def disk_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.files())


# Every image's key, in run order (--only picks a subset).
IMAGE_KEYS = "abcdefghijklwruv"


def image_specs(sizes: Sizes, workdir: Path) -> list[Image]:
    return [
        *tiff_specs(sizes, workdir),
        *format_specs(sizes, workdir),
        http_spec(sizes, workdir),
        repository_spec(sizes, workdir),
        *remote_specs(sizes, workdir),
    ]


def tiff_specs(sizes: Sizes, workdir: Path) -> list[Image]:
    s = sizes
    z, y, x = s.stack
    return [
        Image(
            "a",
            "2-D deflate-tiled uint16",
            workdir / f"plane{s.suffix}.tif",
            "compressed",
            (s.plane, s.plane),
            "uint16",
            "yx",
            f"{s.plane}x{s.plane} uint16, tiles 256x256, deflate (zlib level 1), no predictor, BigTIFF",
            params={"side": s.plane},
            cache=s.rss_cache,
        ),
        Image(
            "b",
            "3-D OME-TIFF z-stack",
            workdir / f"stack{s.suffix}.ome.tif",
            "uncompressed",
            (z, y, x),
            "uint16",
            "zyx",
            f"{z}x{y}x{x} (z,y,x) uint16, uncompressed pages, OME-XML with physical sizes",
            params={"shape": [z, y, x]},
        ),
        Image(
            "c",
            "JPEG RGB slide pyramid",
            workdir / f"slide{s.suffix}.ome.tif",
            "compressed",
            (3, s.slide, s.slide),
            "uint8",
            "cyx",
            f"{s.slide}x{s.slide} RGB uint8, tiles 256x256, JPEG, "
            f"{s.slide_levels - 1} reduced levels in SubIFDs, "
            "OME-TIFF",
            params={"side": s.slide, "levels": s.slide_levels},
        ),
        Image(
            "d",
            "sparse 50 GiB BigTIFF",
            workdir / f"sparse{s.suffix}.tif",
            "compressed",
            (s.sparse, s.sparse),
            "uint16",
            "yx",
            f"{s.sparse}x{s.sparse} uint16 ({s.sparse**2 * 2 / GIB:.0f} GiB logical), "
            "tiles 256x256, deflate; "
            f"only the central {s.sparse_block}x{s.sparse_block} tiles and the first tile are stored",
            full_read=False,
            params={"side": s.sparse, "block": s.sparse_block},
        ),
    ]


def format_specs(sizes: Sizes, workdir: Path) -> list[Image]:
    """One volume per other format, read whole against the format's own reader; the sparse HDF5 dataset
    and the many-file sequence for their first chunk only."""
    z, y, x = shape = sizes.volume
    sfx = sizes.suffix
    dims = f"{z}x{y}x{x} (z,y,x) uint16"

    def volume(
        key: str,
        title: str,
        name: str,
        fmt: str,
        reference: str,
        details: str,
        kind: str = "compressed",
        **more: Any,
    ) -> Image:
        return Image(
            key, title, workdir / name.format(sfx), kind, shape, "uint16", "zyx",
            f"{dims}, {details}", params={"shape": list(shape)}, format=fmt, reference=reference,
            cache=sizes.volume_cache, **more,
        )  # fmt: skip

    sz, sy, sx = sparse = sizes.sparse_volume
    many = (sizes.many_files, TILE, TILE)
    return [
        volume("e", "HDF5 chunked deflate", "volume{}.h5", "hdf5", "h5py",
               "h5py dataset, chunks 1x512x512, deflate level 1"),
        Image(
            "f", "sparse 20 GiB HDF5", workdir / f"sparse{sfx}.h5", "compressed", sparse, "uint16", "zyx",
            f"{sz}x{sy}x{sx} (z,y,x) uint16 ({sz * sy * sx * 2 / GIB:.0f} GiB logical), chunks 1x512x512, "
            "deflate; only four central 1024x1024 planes are stored",
            full_read=False, params={"shape": list(sparse)}, format="hdf5", reference="h5py",
        ),
        volume("g", "NIfTI .nii", "volume{}.nii", "nifti", "nibabel", "NIfTI-1 by nibabel, uncompressed",
               "uncompressed"),
        volume("h", "NIfTI .nii.gz", "volume{}.nii.gz", "nifti", "nibabel", "NIfTI-1 by nibabel, gzip"),
        volume("i", "Zarr v3 zstd", "volume{}.zarr", "zarr", "tensorstore_store",
               "Zarr v3 array by tensorstore, chunks 1x512x512, zstd level 3"),
        volume("j", "N5 gzip", "volume{}.n5", "n5", "tensorstore_store",
               "N5 dataset by tensorstore, blocks 512x512x1, gzip level 1"),
        volume("k", "TIFF file sequence", "sequence{}", "sequence", "tifffile_sequence",
               f"{z} 2-D TIFF files, tiles 256x256, deflate level 1", pattern=SEQUENCE_GLOB),
        Image(
            "l", f"{sizes.many_files}-file TIFF sequence", workdir / f"many{sfx}", "uncompressed", many,
            "uint16", "zyx", f"{sizes.many_files} 2-D TIFF files of {TILE}x{TILE} uint16, uncompressed",
            full_read=False, params={"shape": list(many)}, format="sequence",
            reference="tifffile_sequence", pattern=SEQUENCE_GLOB,
        ),
    ]  # fmt: skip


def http_spec(sizes: Sizes, workdir: Path) -> Image:
    side = sizes.http_plane
    return Image(
        "w",
        "2-D plane served over HTTP",
        workdir / f"served{sizes.suffix}.tif",
        "compressed",
        (side, side),
        "uint16",
        "yx",
        f"{side}x{side} uint16, tiles 256x256, deflate, served in 512x512 chunks (512 KiB)",
        params={"side": side},
        format="http",
        reference="mount_tensorstore",
    )


def repository_spec(sizes: Sizes, workdir: Path) -> Image:
    n, dirs = sizes.repo_images, sizes.repo_dirs
    return Image(
        "r",
        f"repository of {n:,} small images",
        workdir / f"repository{sizes.suffix}",
        "uncompressed",
        (n, REPO_SIDE, REPO_SIDE),
        "uint16",
        "zyx",
        f"{n:,} images in {dirs} directories ({sizes.repo_listed:,} in the first, the rest evenly spread): "
        f"{REPO_SIDE}x{REPO_SIDE} uint16 TIFF files, one in {NIFTI_EVERY} a 4x{REPO_SIDE}x{REPO_SIDE} "
        "NIfTI .nii.gz, and a text file per directory that no reader opens; pixels count one plane each",
        full_read=False,
        params={"images": n, "dirs": dirs, "listed": sizes.repo_listed},
        format="repository",
    )


def remote_specs(sizes: Sizes, workdir: Path) -> list[Image]:
    """The images read over HTTP (issue 15), from nginx, directly or behind a delaying proxy."""
    side, block = sizes.cog_side, sizes.cog_block
    z, y, x = sizes.remote_stack
    return [
        Image(
            "u",
            f"sparse {side**2 * 2 / 1e9:.0f} GB COG over HTTP",
            workdir / f"cog{sizes.suffix}.tif",
            "compressed",
            (side, side),
            "uint16",
            "yx",
            f"{side}x{side} uint16 ({side**2 * 2 / 1e9:.0f} GB logical), tiles 256x256, deflate, reduced "
            f"levels in SubIFDs down to one tile; only the central {block}x{block} tiles of each level are "
            "stored",
            full_read=False,
            params={"side": side, "block": block},
            format="remote",
        ),
        Image(
            "v",
            "OME-TIFF z-stack over HTTP",
            workdir / f"remote-stack{sizes.suffix}.ome.tif",
            "compressed",
            (z, y, x),
            "uint16",
            "zyx",
            f"{z}x{y}x{x} (z,y,x) uint16, tiles 256x256, deflate level 1, OME-XML",
            params={"shape": [z, y, x]},
            format="remote",
        ),
    ]


def _sidecar(image: Image) -> Path:
    return image.path.with_name(image.path.name + ".json")


def write_deflate_plane(path: Path, tiles: Iterator[np.ndarray | None], side: int) -> None:
    """A side x side uint16 BigTIFF of deflate tiles (level 1, no predictor); None tiles stay unwritten."""
    tifffile.imwrite(
        path,
        tiles,
        shape=(side, side),
        dtype="uint16",
        tile=(TILE, TILE),
        bigtiff=True,
        maxworkers=2,
        metadata=None,
        compression="zlib",
        compressionargs={"level": 1},
        predictor=False,
    )


def write_stack(path: Path, field_: Field, shape: tuple[int, int, int]) -> None:
    metadata = {
        "axes": "ZYX",
        "PhysicalSizeX": 0.325,
        "PhysicalSizeXUnit": "µm",
        "PhysicalSizeY": 0.325,
        "PhysicalSizeYUnit": "µm",
        "PhysicalSizeZ": 1.0,
        "PhysicalSizeZUnit": "µm",
    }
    tifffile.imwrite(
        path,
        stack_planes(field_, shape),
        shape=shape,
        dtype="uint16",
        photometric="minisblack",
        bigtiff=True,
        metadata=metadata,
    )


def write_slide(path: Path, field_: Field, side: int, levels: int) -> None:
    options: dict[str, Any] = {
        "tile": (TILE, TILE),
        "compression": "jpeg",
        "photometric": "rgb",
        "dtype": "uint8",
        "maxworkers": 2,
    }
    metadata = {
        "axes": "YXS",
        "PhysicalSizeX": 0.25,
        "PhysicalSizeXUnit": "µm",
        "PhysicalSizeY": 0.25,
        "PhysicalSizeYUnit": "µm",
    }
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        tif.write(
            slide_tiles(field_, side, 1),
            shape=(side, side, 3),
            subifds=levels - 1,
            metadata=metadata,
            **options,
        )
        for level in range(1, levels):
            step = 2**level
            reduced = math.ceil(side / step)
            tif.write(
                slide_tiles(field_, reduced, step), shape=(reduced, reduced, 3), subfiletype=1, **options
            )


def write_sparse(path: Path, field_: Field, side: int, block: int) -> None:
    write_deflate_plane(path, sparse_tiles(field_, side, block), side)
    with tifffile.TiffFile(path) as tif:
        stored = int(np.count_nonzero(np.asarray(tif.pages[0].databytecounts)))
    if stored != block * block + 1:
        raise RuntimeError(f"sparse image stores {stored} tiles, expected {block * block + 1}")


def generate(image: Image) -> None:
    """Write the image unless one from the same generator and parameters exists."""
    expected = {"generator": GENERATOR_VERSION, "key": image.key, **image.params}
    sidecar = _sidecar(image)
    if image.path.exists() and sidecar.exists():
        with contextlib.suppress(ValueError):
            if json.loads(sidecar.read_text()) == expected:
                return
    partial = image.path.parent / ".partial" / image.path.name
    partial.parent.mkdir(parents=True, exist_ok=True)
    _remove(partial)
    print(f"  generating {image.path.name}: {image.description}", flush=True)
    start = time.perf_counter()
    field_ = Field(seed=ord(image.key))
    params = image.params
    if image.key == "a":
        write_deflate_plane(partial, plane_tiles(field_, params["side"]), params["side"])
    elif image.key == "b":
        z, y, x = params["shape"]
        write_stack(partial, field_, (z, y, x))
    elif image.key == "c":
        write_slide(partial, field_, params["side"], params["levels"])
    elif image.key == "d":
        write_sparse(partial, field_, params["side"], params["block"])
    elif image.key == "w":
        write_deflate_plane(partial, plane_tiles(field_, params["side"]), params["side"])
    elif image.key == "r":
        write_repository(partial, params["images"], params["dirs"], params["listed"])
    elif image.key == "u":
        write_cog(partial, field_, params["side"], params["block"])
    else:
        _write_format(image, partial, field_)
    _remove(image.path)
    os.replace(partial, image.path)
    sidecar.write_text(json.dumps(expected))
    seconds = time.perf_counter() - start
    print(f"  wrote {image.path.name}: {image.disk_bytes / MB:.0f} MB in {seconds:.0f} s", flush=True)


def _write_format(image: Image, path: Path, field_: Field) -> None:
    z, y, x = image.params["shape"]
    shape = (z, y, x)
    if image.key == "f":
        write_sparse_hdf5(path, field_, shape)
    elif image.key == "v":
        write_tiled_stack(path, field_, shape)
    elif image.format == "hdf5":
        write_hdf5(path, field_, shape)
    elif image.format == "nifti":
        write_nifti(path, field_, shape)
    elif image.format in ("zarr", "n5"):
        write_tensorstore(path, field_, shape, "zarr3" if image.format == "zarr" else "n5")
    elif image.format == "sequence":
        write_sequence(path, field_, shape, compressed=image.full_read)
    else:
        raise ValueError(f"no writer for image {image.key}")


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
