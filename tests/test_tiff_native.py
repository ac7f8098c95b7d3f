"""TiffSource native blocks: which tiled layouts pass stored tiles through unchanged, and that every such
tile, decoded by the standard codec, is the right region of the image and the very bytes tifffile stored."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numcodecs
import numpy as np
import pytest
import tifffile
from tiff_cases import CASES, _random

from zarrfs.errors import SourceError
from zarrfs.sources.base import NativeBlocks
from zarrfs.sources.tiff import TiffSource

# (page number in the series, separate sample plane) of a canonical outer index (t, c, z...), per layout
PlaneOf = Callable[[tuple[int, ...]], tuple[int, int]]


@dataclass(frozen=True)
class NativeCase:
    path: Path
    codec: str
    tile: tuple[int, int]
    plane_of: PlaneOf
    axes: str
    levels: int = 1


def _single_plane(index: tuple[int, ...]) -> tuple[int, int]:
    return 0, 0


def _tiled_2d(compression: str | None, codec: str) -> Callable[[Path], NativeCase]:
    def make(directory: Path) -> NativeCase:
        path = directory / f"tiled_2d_{compression}.tif"
        data = _random(f"tiled_2d_{compression}", (150, 133), "uint16")
        tifffile.imwrite(path, data, tile=(32, 48), compression=compression)
        return NativeCase(path, codec, (32, 48), _single_plane, "yx")

    return make


def _zstack(directory: Path) -> NativeCase:
    path = directory / "native_zstack.tif"
    data = _random("native_zstack", (5, 70, 90), "uint16")
    tifffile.imwrite(path, data, tile=(32, 32), compression="zlib", photometric="minisblack")
    return NativeCase(path, "zlib", (32, 32), lambda index: (index[0], 0), "zyx")


def _planar_rgb(directory: Path) -> NativeCase:
    case = CASES["rgb_planar_separate"](directory)  # S Y X, tiles 32 x 32, zlib: one page, samples separate
    return NativeCase(case.path, "zlib", (32, 32), lambda index: (0, index[0]), "cyx")


def _ome_4d(directory: Path) -> NativeCase:
    path = directory / "native_ome_4d.ome.tif"
    data = _random("native_ome_4d", (2, 3, 50, 70), "uint16")  # C Z Y X: pages run Z fastest
    tifffile.imwrite(path, data, tile=(32, 32), compression="zstd", metadata={"axes": "CZYX"})
    return NativeCase(path, "zstd", (32, 32), lambda index: (index[0] * 3 + index[1], 0), "czyx")


def _ome_pyramid(directory: Path) -> NativeCase:
    case = CASES["ome_pyramid"](directory)  # C Y X, tiles 64 x 64, zlib, two reduced levels in SubIFDs
    return NativeCase(case.path, "zlib", (64, 64), lambda index: (index[0], 0), "cyx", levels=3)


def _sparse(directory: Path) -> NativeCase:
    case = CASES["sparse_tiles"](directory)  # uncompressed, only the first tile written
    return NativeCase(case.path, "none", (32, 32), _single_plane, "yx")


NATIVE_CASES: dict[str, Callable[[Path], NativeCase]] = {
    "tiled_none": _tiled_2d(None, "none"),
    "tiled_zlib": _tiled_2d("zlib", "zlib"),
    "tiled_adobe_deflate": _tiled_2d("adobe_deflate", "zlib"),
    "tiled_zstd": _tiled_2d("zstd", "zstd"),
    "zstack": _zstack,
    "planar_rgb": _planar_rgb,
    "ome_4d": _ome_4d,
    "ome_pyramid": _ome_pyramid,
    "sparse": _sparse,
}


def _decode(data: bytes, codec: str, dtype: np.dtype, tile: tuple[int, int]) -> np.ndarray:
    if codec == "zlib":
        data = numcodecs.Zlib().decode(data)
    elif codec == "zstd":
        data = numcodecs.Zstd().decode(data)
    else:
        assert codec == "none"
    return np.frombuffer(bytes(data), dtype.newbyteorder("<")).reshape(tile)


def _stored_bytes(path: Path, page: tifffile.TiffPage | tifffile.TiffFrame, segment: int) -> bytes | None:
    offset, bytecount = page.dataoffsets[segment], page.databytecounts[segment]
    if offset == 0 or bytecount == 0:
        return None
    with open(path, "rb") as handle:
        handle.seek(offset)
        return handle.read(bytecount)


@pytest.mark.parametrize("name", NATIVE_CASES)
def test_native_blocks_are_stored_tiles(name: str, tmp_path: Path) -> None:
    case = NATIVE_CASES[name](tmp_path)
    with TiffSource(str(case.path)) as source, tifffile.TiffFile(case.path) as tiff:
        assert source.info.axes == case.axes
        assert len(source.info.levels) == case.levels
        dtype = source.info.dtype
        for level in range(case.levels):
            shape = source.info.levels[level].shape
            native = source.native_blocks(level)
            assert native == NativeBlocks((*(1 for _ in shape[:-2]), *case.tile), case.codec)
            expected = tifffile.imread(case.path, level=level)  # every case is stored in canonical order
            assert expected.shape == shape
            pages = tiff.series[0].levels[level].pages
            rows, columns = (math.ceil(size / step) for size, step in zip(shape[-2:], case.tile, strict=True))
            written = 0
            for index in itertools.product(*(range(size) for size in (*shape[:-2], rows, columns))):
                *outer, row, column = index
                page_number, sample = case.plane_of(tuple(outer))
                stored = _stored_bytes(
                    case.path, pages[page_number], (sample * rows + row) * columns + column
                )
                data = source.read_native_block(level, index)
                assert data == stored
                if data is None:
                    continue
                written += 1
                if case.codec == "none":
                    assert len(data) == case.tile[0] * case.tile[1] * dtype.itemsize
                tile = _decode(data, case.codec, dtype, case.tile)
                y, x = row * case.tile[0], column * case.tile[1]
                region = expected[(*outer, slice(y, y + case.tile[0]), slice(x, x + case.tile[1]))]
                in_image = tile[: region.shape[0], : region.shape[1]]
                assert in_image.tobytes() == region.astype(in_image.dtype).tobytes()
            assert written == (1 if name == "sparse" else math.prod((*shape[:-2], rows, columns)))


def test_native_block_index_outside_the_grid(tmp_path: Path) -> None:
    case = _ome_4d(tmp_path)  # c 2, z 3, 50 x 70 in tiles of 32 x 32: grid 2 x 3 x 2 x 3
    with TiffSource(str(case.path)) as source:
        assert source.read_native_block(0, (1, 2, 1, 2)) is not None
        for index in [(2, 0, 0, 0), (0, 3, 0, 0), (0, 0, 2, 0), (0, 0, 0, 3), (-1, 0, 0, 0), (0, 0, 0)]:
            with pytest.raises(IndexError):
                source.read_native_block(0, index)
        with pytest.raises(IndexError):
            source.native_blocks(1)


def test_native_blocks_from_threads(tmp_path: Path) -> None:
    case = _zstack(tmp_path)
    with TiffSource(str(case.path)) as source:
        indices = list(itertools.product(range(5), range(3), range(3)))
        serial = [source.read_native_block(0, index) for index in indices]
        with ThreadPoolExecutor(8) as pool:
            for _ in range(4):
                assert list(pool.map(lambda index: source.read_native_block(0, index), indices)) == serial


def test_native_blocks_on_a_closed_source(tmp_path: Path) -> None:
    case = _tiled_2d("zlib", "zlib")(tmp_path)
    source = TiffSource(str(case.path))
    source.close()
    with pytest.raises(SourceError, match="closed"):
        source.read_native_block(0, (0, 0))


# ----------------------------------------------------------------------------------------------------------
# Layouts that are never passed through


def _write(name: str, shape: tuple[int, ...], dtype: str, **options: object) -> Callable[[Path], Path]:
    def make(directory: Path) -> Path:
        path = directory / f"{name}.tif"
        tifffile.imwrite(path, _random(name, shape, dtype), **options)
        return path

    return make


def _from_case(name: str) -> Callable[[Path], Path]:
    return lambda directory: CASES[name](directory).path


def _short_raw_tiles(directory: Path) -> Path:
    """Uncompressed tiles whose byte count (one of them) is less than a whole tile."""
    path = directory / "short_raw_tiles.tif"
    tifffile.imwrite(path, _random("short_raw_tiles", (70, 90), "uint16"), tile=(32, 32))
    with tifffile.TiffFile(path, mode="r+b") as tiff:
        tag = tiff.pages.first.tags["TileByteCounts"]
        counts = list(tag.value)
        counts[0] -= 2
        tag.overwrite(tuple(counts))
    return path


def _ome_missing_tiled_planes(directory: Path) -> Path:
    path = directory / "ome_missing_tiled_planes.ome.tif"
    data = _random("ome_missing_tiled_planes", (4, 50, 60), "uint16")
    tifffile.imwrite(path, data, tile=(32, 32), compression="zlib", metadata={"axes": "ZYX"})
    xml = tifffile.tiffcomment(path)
    tifffile.tiffcomment(path, comment=xml.replace('SizeZ="4"', 'SizeZ="6"').encode())
    return path


NOT_NATIVE: dict[str, Callable[[Path], Path]] = {
    "striped_raw": _from_case("uint8_strips_raw"),
    "striped_zlib": _write("striped_zlib", (100, 90), "uint16", rowsperstrip=16, compression="zlib"),
    "tiled_lzw": _write("tiled_lzw", (100, 90), "uint16", tile=(32, 32), compression="lzw"),
    "tiled_jpeg": _write("tiled_jpeg", (100, 90), "uint8", tile=(32, 32), compression="jpeg"),
    "tiled_packbits": _write("tiled_packbits", (100, 90), "uint16", tile=(32, 32), compression="packbits"),
    "deflate_horizontal_predictor": _write(
        "deflate_horizontal_predictor", (100, 90), "uint16", tile=(32, 32), compression="zlib", predictor=True
    ),
    "float_predictor": _from_case("float32_tiled_float_predictor"),
    "big_endian_tiled": _from_case("big_endian_tiled"),
    "big_endian_raw_tiles": _write("big_endian_raw_tiles", (100, 90), "uint16", tile=(32, 32), byteorder=">"),
    "interleaved_rgb_tiled": _write(
        "interleaved_rgb_tiled", (100, 90, 3), "uint8", tile=(32, 32), photometric="rgb"
    ),
    "interleaved_rgba_zlib": _from_case("rgba_interleaved_tiled"),
    "bool_tiled": _write("bool_tiled", (100, 90), "bool", tile=(32, 32)),
    "imagej_single_ifd": _from_case("imagej_single_ifd"),
    "volumetric_tiles": _from_case("volumetric_tiles"),
    "ome_missing_tiled_planes": _ome_missing_tiled_planes,
    "short_raw_tiles": _short_raw_tiles,
}


@pytest.mark.parametrize("name", NOT_NATIVE)
def test_layouts_without_native_blocks(name: str, tmp_path: Path) -> None:
    path = NOT_NATIVE[name](tmp_path)
    with TiffSource(str(path)) as source:
        for level in range(len(source.info.levels)):
            assert source.native_blocks(level) is None
        with pytest.raises(ValueError, match="no native blocks"):
            source.read_native_block(0, (0,) * len(source.info.axes))


def test_big_endian_bytes_are_native(tmp_path: Path) -> None:
    """Byte order does not matter for 1-byte samples."""
    path = _write("big_endian_uint8", (100, 90), "uint8", tile=(32, 32), byteorder=">", compression="zlib")(
        tmp_path
    )
    with TiffSource(str(path)) as source:
        assert source.native_blocks(0) == NativeBlocks((32, 32), "zlib")
        tile = _decode(source.read_native_block(0, (3, 2)), "zlib", source.info.dtype, (32, 32))
        assert tile[:4, :26].tobytes() == tifffile.imread(path)[96:100, 64:90].tobytes()
