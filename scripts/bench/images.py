"""The four generated images (a-d) at each run size, and writing them once into the work directory."""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

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


FULL = Sizes("full", 36864, (128, 2048, 2048), 24576, 6, 163840, 32, "512MiB", 400, "")
QUICK = Sizes("quick", 8192, (16, 1024, 1024), 4096, 4, 163840, 8, "32MiB", 150, "-quick")


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
    full_read: bool = True  # False for the virtual image that does not fit in memory
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * np.dtype(self.dtype).itemsize


def image_specs(sizes: Sizes, workdir: Path) -> list[Image]:
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
    os.replace(partial, image.path)
    sidecar.write_text(json.dumps(expected))
    seconds = time.perf_counter() - start
    print(
        f"  wrote {image.path.name}: {image.path.stat().st_size / MB:.0f} MB in {seconds:.0f} s", flush=True
    )
