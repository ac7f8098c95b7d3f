"""Small generated TIFF files covering the layouts microscopy labs have, with the pixels expected from each.

Every case writes one file into a directory and returns a ``Case``: which series to open, the canonical axes
a reader should report, and the expected pixels. ``expected`` is what tifffile itself reads, moved into
canonical ``tczyx`` order by code written out in each case (never by the reader under test). Image sizes are
deliberately not multiples of tile or strip sizes, so every case has partial edge tiles.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile


@dataclass(frozen=True)
class Case:
    path: Path
    series: int
    axes: str
    expected: np.ndarray


def _random(name: str, shape: tuple[int, ...], dtype: str | np.dtype) -> np.ndarray:
    """Deterministic noise spanning the dtype's range (a seed per case name)."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return rng.integers(0, 2, shape).astype(bool)
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
    return (rng.standard_normal(shape) * 1000).astype(dtype)


def _read(path: Path, series: int = 0) -> np.ndarray:
    return tifffile.imread(path, series=series)


def _plain(
    name: str,
    shape: tuple[int, ...],
    dtype: str,
    axes: str = "yx",
    **options: object,
) -> Callable[[Path], Case]:
    """A case whose tifffile view already is in canonical order (no transposition needed)."""

    def make(directory: Path) -> Case:
        path = directory / f"{name}.tif"
        tifffile.imwrite(path, _random(name, shape, dtype), **options)
        return Case(path, 0, axes, _read(path))

    return make


def ome_5d_xyczt(directory: Path) -> Case:
    """OME DimensionOrder XYCZT: pages run C fastest, then Z, then T; tiled, deflate."""
    path = directory / "ome_5d_xyczt.ome.tif"
    data = _random("ome_5d_xyczt", (3, 5, 2, 70, 90), "uint16")  # T Z C Y X
    tifffile.imwrite(path, data, metadata={"axes": "TZCYX"}, tile=(32, 48), compression="zlib")
    t_z_c_y_x = _read(path)
    return Case(path, 0, "tczyx", t_z_c_y_x.transpose(0, 2, 1, 3, 4))


def ome_5d_xyzct(directory: Path) -> Case:
    """OME DimensionOrder XYZCT (the canonical order already), striped LZW."""
    path = directory / "ome_5d_xyzct.ome.tif"
    data = _random("ome_5d_xyzct", (2, 3, 4, 45, 61), "uint8")  # T C Z Y X
    tifffile.imwrite(path, data, metadata={"axes": "TCZYX"}, rowsperstrip=10, compression="lzw")
    return Case(path, 0, "tczyx", _read(path))


def ome_5d_xytzc(directory: Path) -> Case:
    """OME DimensionOrder XYTZC: C slowest, T fastest; uncompressed, so read as one contiguous block."""
    path = directory / "ome_5d_xytzc.ome.tif"
    data = _random("ome_5d_xytzc", (2, 3, 4, 33, 47), "float32")  # C Z T Y X
    tifffile.imwrite(path, data, metadata={"axes": "CZTYX"})
    c_z_t_y_x = _read(path)
    return Case(path, 0, "tczyx", c_z_t_y_x.transpose(2, 0, 1, 3, 4))


def ome_2d(directory: Path) -> Case:
    path = directory / "ome_2d.ome.tif"
    tifffile.imwrite(path, _random("ome_2d", (77, 95), "int16"), metadata={"axes": "YX"})
    return Case(path, 0, "yx", _read(path))


def ome_3d_time(directory: Path) -> Case:
    path = directory / "ome_3d_time.ome.tif"
    tifffile.imwrite(
        path, _random("ome_3d_time", (6, 50, 40), "uint16"), metadata={"axes": "TYX"}, compression="zstd"
    )
    return Case(path, 0, "tyx", _read(path))


def ome_physical(directory: Path) -> Case:
    """OME physical sizes with units, time increment, channel names and signed RGBA colors."""
    path = directory / "ome_physical.ome.tif"
    metadata = {
        "axes": "TCZYX",
        "PhysicalSizeX": 0.25,
        "PhysicalSizeXUnit": "µm",
        "PhysicalSizeY": 0.3,
        "PhysicalSizeZ": 150,
        "PhysicalSizeZUnit": "nm",
        "TimeIncrement": 2.5,
        "TimeIncrementUnit": "min",
        "Channel": {"Name": ["DAPI", "GFP"], "Color": [-16776961, 16711935]},  # 0xFF0000FF, 0x00FF00FF
    }
    data = _random("ome_physical", (2, 2, 3, 40, 50), "uint16")
    tifffile.imwrite(path, data, metadata=metadata)
    return Case(path, 0, "tczyx", _read(path))


def ome_rgb_channels(directory: Path) -> Case:
    """Two OME channels of interleaved RGB samples: C and S merge into one c axis of 6."""
    path = directory / "ome_rgb_channels.ome.tif"
    data = _random("ome_rgb_channels", (2, 41, 59, 3), "uint8")  # C Y X S
    tifffile.imwrite(path, data, photometric="rgb", metadata={"axes": "CYXS"}, tile=(16, 32))
    c_y_x_s = _read(path)
    return Case(path, 0, "cyx", c_y_x_s.transpose(0, 3, 1, 2).reshape(6, 41, 59))


def ome_pyramid(directory: Path) -> Case:
    """OME-TIFF with two reduced levels in SubIFDs."""
    path = directory / "ome_pyramid.ome.tif"
    base = _random("ome_pyramid", (2, 300, 260), "uint16")
    options = {"tile": (64, 64), "compression": "zlib"}
    with tifffile.TiffWriter(path) as writer:
        writer.write(base, subifds=2, metadata={"axes": "CYX"}, **options)
        writer.write(base[:, ::2, ::2], subfiletype=1, **options)
        writer.write(base[:, ::4, ::4], subfiletype=1, **options)
    return Case(path, 0, "cyx", _read(path))


def ome_missing_planes(directory: Path) -> Case:
    """OME-XML announcing more z planes than the file holds: the missing planes read as zeros."""
    path = directory / "ome_missing_planes.ome.tif"
    data = _random("ome_missing_planes", (4, 30, 40), "uint16")
    tifffile.imwrite(path, data, metadata={"axes": "ZYX"}, compression="zlib")
    xml = tifffile.tiffcomment(path)
    tifffile.tiffcomment(path, comment=xml.replace('SizeZ="4"', 'SizeZ="6"').encode())
    return Case(path, 0, "zyx", _read(path))


def ome_multi_file(directory: Path) -> Case:
    """An OME-TIFF whose XML places planes 2-3 in a second file (as Bio-Formats' multi-file export does)."""
    path = directory / "ome_multi_file.ome.tif"
    first = _random("ome_multi_file_0", (2, 30, 40), "uint16")
    second = _random("ome_multi_file_1", (2, 30, 40), "uint16")
    options = {"compression": "zlib", "photometric": "minisblack"}
    tifffile.imwrite(path, first, metadata={"axes": "ZYX"}, **options)
    tifffile.imwrite(directory / "ome_multi_file_part2.tif", second, metadata=None, **options)
    namespace = "http://www.openmicroscopy.org/Schemas/OME/2016-06"
    xml = (
        f'<?xml version="1.0" encoding="UTF-8"?><OME xmlns="{namespace}" UUID="urn:uuid:part-1">'
        '<Image ID="Image:0" Name="multi"><Pixels ID="Pixels:0" DimensionOrder="XYZCT" Type="uint16" '
        'SizeX="40" SizeY="30" SizeZ="4" SizeC="1" SizeT="1"><Channel ID="Channel:0:0" SamplesPerPixel="1"/>'
        '<TiffData FirstZ="0" IFD="0" PlaneCount="2">'
        '<UUID FileName="ome_multi_file.ome.tif">urn:uuid:part-1</UUID></TiffData>'
        '<TiffData FirstZ="2" IFD="0" PlaneCount="2">'
        '<UUID FileName="ome_multi_file_part2.tif">urn:uuid:part-2</UUID></TiffData>'
        "</Pixels></Image></OME>"
    )
    tifffile.tiffcomment(path, comment=xml.encode())
    return Case(path, 0, "zyx", _read(path))


def imagej_hyperstack(directory: Path) -> Case:
    """ImageJ TZCYX hyperstack with calibration (resolution, unit, z spacing, frame interval)."""
    path = directory / "imagej_hyperstack.tif"
    data = _random("imagej_hyperstack", (3, 4, 2, 37, 53), "uint16")  # T Z C Y X
    metadata = {"axes": "TZCYX", "spacing": 2.5, "unit": "micron", "finterval": 0.5}
    tifffile.imwrite(path, data, imagej=True, metadata=metadata, resolution=(1 / 0.4, 1 / 0.4))
    t_z_c_y_x = _read(path)
    return Case(path, 0, "tczyx", t_z_c_y_x.transpose(0, 2, 1, 3, 4))


def imagej_single_ifd(directory: Path) -> Case:
    """ImageJ stack where only the first IFD exists and the other planes follow its data contiguously."""
    path = directory / "imagej_single_ifd.tif"
    data = _random("imagej_single_ifd", (5, 2, 31, 43), "float32")  # Z C Y X
    tifffile.imwrite(path, data, imagej=True, truncate=True, metadata={"axes": "ZCYX"})
    z_c_y_x = _read(path)
    return Case(path, 0, "czyx", z_c_y_x.transpose(1, 0, 2, 3))


def imagej_rgb(directory: Path) -> Case:
    path = directory / "imagej_rgb.tif"
    data = _random("imagej_rgb", (4, 29, 38, 3), "uint8")  # Z Y X S
    tifffile.imwrite(path, data, imagej=True, photometric="rgb", metadata={"axes": "ZYXS"})
    z_y_x_s = _read(path)
    return Case(path, 0, "czyx", z_y_x_s.transpose(3, 0, 1, 2))


def imagej_labelled_channels(directory: Path) -> Case:
    """ImageJ composite whose slice labels name the channels and whose lookup tables color them."""
    path = directory / "imagej_labelled_channels.tif"
    red = np.zeros((3, 256), np.uint8)
    red[0] = np.arange(256)
    magenta = np.zeros((3, 256), np.uint8)
    magenta[0] = magenta[2] = np.arange(256)
    metadata = {"axes": "CYX", "mode": "composite", "Labels": ["mCherry", "Cy5"], "LUTs": [red, magenta]}
    data = _random("imagej_labelled_channels", (2, 33, 44), "uint8")
    tifffile.imwrite(path, data, imagej=True, metadata=metadata)
    return Case(path, 0, "cyx", _read(path))


def rgb_interleaved(directory: Path) -> Case:
    path = directory / "rgb_interleaved.tif"
    tifffile.imwrite(path, _random("rgb_interleaved", (75, 101, 3), "uint8"), photometric="rgb")
    y_x_s = _read(path)
    return Case(path, 0, "cyx", y_x_s.transpose(2, 0, 1))


def rgba_interleaved_tiled(directory: Path) -> Case:
    path = directory / "rgba_interleaved_tiled.tif"
    data = _random("rgba_interleaved_tiled", (70, 90, 4), "uint16")
    tifffile.imwrite(
        path, data, photometric="rgb", extrasamples=["unassalpha"], tile=(32, 32), compression="zlib"
    )
    y_x_s = _read(path)
    return Case(path, 0, "cyx", y_x_s.transpose(2, 0, 1))


def rgb_planar_separate(directory: Path) -> Case:
    path = directory / "rgb_planar_separate.tif"
    data = _random("rgb_planar_separate", (3, 66, 85), "uint8")  # S Y X
    tifffile.imwrite(
        path, data, photometric="rgb", planarconfig="separate", tile=(32, 32), compression="zlib"
    )
    return Case(path, 0, "cyx", _read(path))


def jpeg_rgb(directory: Path) -> Case:
    path = directory / "jpeg_rgb.tif"
    gradient = np.linspace(0, 255, 120 * 130 * 3).reshape(120, 130, 3).astype(np.uint8)
    tifffile.imwrite(path, gradient, photometric="rgb", tile=(64, 64), compression="jpeg")
    y_x_s = _read(path)
    return Case(path, 0, "cyx", y_x_s.transpose(2, 0, 1))


def jpeg_gray(directory: Path) -> Case:
    path = directory / "jpeg_gray.tif"
    gradient = np.linspace(0, 255, 99 * 111).reshape(99, 111).astype(np.uint8)
    tifffile.imwrite(path, gradient, rowsperstrip=16, compression="jpeg")
    return Case(path, 0, "yx", _read(path))


def zstack_generic_pages(directory: Path) -> Case:
    """A multi-page stack without OME or ImageJ metadata, written page by page (not contiguous)."""
    path = directory / "zstack_generic_pages.tif"
    with tifffile.TiffWriter(path) as writer:
        for plane in _random("zstack_generic_pages", (6, 50, 61), "uint16"):
            writer.write(plane, rowsperstrip=8, metadata=None)
    return Case(path, 0, "zyx", _read(path))


def zstack_generic_compressed(directory: Path) -> Case:
    path = directory / "zstack_generic_compressed.tif"
    data = _random("zstack_generic_compressed", (7, 45, 52), "int32")
    tifffile.imwrite(path, data, metadata=None, compression="zstd", rowsperstrip=5)
    return Case(path, 0, "zyx", _read(path))


def shaped_4d(directory: Path) -> Case:
    """tifffile's own JSON metadata with a channel and z axis."""
    path = directory / "shaped_4d.tif"
    data = _random("shaped_4d", (3, 4, 40, 35), "uint16")  # C Z Y X
    options = {"tile": (16, 16), "compression": "packbits", "photometric": "minisblack"}
    tifffile.imwrite(path, data, metadata={"axes": "CZYX"}, **options)
    return Case(path, 0, "czyx", _read(path))


def shaped_time_depth(directory: Path) -> Case:
    """Axes given as Z then T: canonical order puts t first."""
    path = directory / "shaped_time_depth.tif"
    data = _random("shaped_time_depth", (3, 2, 30, 20), "float64")  # Z T Y X
    tifffile.imwrite(path, data, metadata={"axes": "ZTYX"})
    z_t_y_x = _read(path)
    return Case(path, 0, "tzyx", z_t_y_x.transpose(1, 0, 2, 3))


def volumetric_tiles(directory: Path) -> Case:
    """SGI volumetric tiles: one page, tiles 8 planes deep."""
    path = directory / "volumetric_tiles.tif"
    data = _random("volumetric_tiles", (20, 70, 90), "uint8")
    tifffile.imwrite(path, data, tile=(8, 32, 32), volumetric=True, compression="zlib")
    return Case(path, 0, "zyx", _read(path))


def multi_series(directory: Path) -> Case:
    """Two unrelated images in one file; the case opens the second."""
    path = directory / "multi_series.tif"
    with tifffile.TiffWriter(path) as writer:
        writer.write(_random("multi_series_0", (50, 70), "uint8"))
        writer.write(
            _random("multi_series_1", (4, 40, 60), "uint16"), photometric="minisblack", tile=(16, 16)
        )
    return Case(path, 1, "zyx", _read(path, series=1))


def bigtiff_tiled(directory: Path) -> Case:
    path = directory / "bigtiff_tiled.tif"
    data = _random("bigtiff_tiled", (2, 130, 150), "uint16")
    tifffile.imwrite(path, data, bigtiff=True, tile=(64, 64), compression="zlib", photometric="minisblack")
    return Case(path, 0, "zyx", _read(path))


def big_endian_tiled(directory: Path) -> Case:
    path = directory / "big_endian_tiled.tif"
    data = _random("big_endian_tiled", (100, 90), "uint16")
    tifffile.imwrite(path, data, byteorder=">", tile=(32, 32), compression="zlib")
    return Case(path, 0, "yx", _read(path))


def big_endian_stack(directory: Path) -> Case:
    """Big-endian uncompressed pages back to back: read without decoding, then byte-swapped."""
    path = directory / "big_endian_stack.tif"
    data = _random("big_endian_stack", (3, 40, 50), "float32")
    tifffile.imwrite(path, data, byteorder=">", photometric="minisblack")
    return Case(path, 0, "zyx", _read(path))


def big_endian_strips(directory: Path) -> Case:
    """Big-endian uncompressed strips in pages written one by one (not contiguous)."""
    path = directory / "big_endian_strips.tif"
    with tifffile.TiffWriter(path, byteorder=">") as writer:
        for plane in _random("big_endian_strips", (3, 37, 41), "int32"):
            writer.write(plane, rowsperstrip=6, metadata=None)
    return Case(path, 0, "zyx", _read(path))


def big_endian_predictor(directory: Path) -> Case:
    path = directory / "big_endian_predictor.tif"
    data = _random("big_endian_predictor", (63, 77), "float32")
    tifffile.imwrite(path, data, byteorder=">", compression="zlib", predictor=True, rowsperstrip=9)
    return Case(path, 0, "yx", _read(path))


def single_big_strip(directory: Path) -> Case:
    """The whole image in one compressed strip, the worst case for chunked reads."""
    path = directory / "single_big_strip.tif"
    data = _random("single_big_strip", (700, 530), "uint16")
    tifffile.imwrite(path, data, rowsperstrip=700, compression="zlib")
    return Case(path, 0, "yx", _read(path))


def single_raw_strip(directory: Path) -> Case:
    path = directory / "single_raw_strip.tif"
    tifffile.imwrite(path, _random("single_raw_strip", (300, 410), "uint8"), rowsperstrip=300)
    return Case(path, 0, "yx", _read(path))


def sparse_tiles(directory: Path) -> Case:
    """Tiles never written (offset and byte count 0) read as zeros."""
    path = directory / "sparse_tiles.tif"
    first = _random("sparse_tiles", (32, 32), "uint16")
    tiles = itertools.chain([first], itertools.repeat(None, 3 * 4 - 1))
    tifffile.imwrite(path, tiles, shape=(90, 110), dtype="uint16", tile=(32, 32))
    return Case(path, 0, "yx", _read(path))


CASES: dict[str, Callable[[Path], Case]] = {
    # dtypes, compressions, predictors, strips and tiles
    "uint8_strips_raw": _plain("uint8_strips_raw", (97, 131), "uint8", rowsperstrip=16),
    "uint16_tiled_zlib": _plain("uint16_tiled_zlib", (300, 277), "uint16", tile=(64, 64), compression="zlib"),
    "uint16_adobe_deflate_horizontal": _plain(
        "uint16_adobe_deflate_horizontal", (120, 99), "uint16", compression="adobe_deflate", predictor=True
    ),
    "int16_strips_lzw": _plain("int16_strips_lzw", (150, 201), "int16", rowsperstrip=7, compression="lzw"),
    "int8_lzw_horizontal": _plain(
        "int8_lzw_horizontal", (81, 67), "int8", rowsperstrip=20, compression="lzw", predictor=True
    ),
    "uint32_tiled_zstd": _plain("uint32_tiled_zstd", (130, 170), "uint32", tile=(48, 80), compression="zstd"),
    "int32_strips_packbits": _plain(
        "int32_strips_packbits", (90, 75), "int32", rowsperstrip=11, compression="packbits"
    ),
    "uint64_tiled_zlib": _plain("uint64_tiled_zlib", (70, 50), "uint64", tile=(32, 16), compression="zlib"),
    "int64_strips_raw": _plain("int64_strips_raw", (33, 29), "int64", rowsperstrip=4),
    "float16_strips_zstd": _plain(
        "float16_strips_zstd", (64, 95), "float16", rowsperstrip=13, compression="zstd"
    ),
    "float32_tiled_float_predictor": _plain(
        "float32_tiled_float_predictor", (100, 130), "float32", tile=(32, 48), compression="zlib", predictor=3
    ),
    "float64_tiled_raw": _plain("float64_tiled_raw", (75, 66), "float64", tile=(32, 32)),
    "bool_bilevel": _plain("bool_bilevel", (67, 90), "bool"),
    "jpeg_gray": jpeg_gray,
    "jpeg_rgb": jpeg_rgb,
    # samples
    "rgb_interleaved": rgb_interleaved,
    "rgba_interleaved_tiled": rgba_interleaved_tiled,
    "rgb_planar_separate": rgb_planar_separate,
    # stacks and metadata flavours
    "zstack_generic_pages": zstack_generic_pages,
    "zstack_generic_compressed": zstack_generic_compressed,
    "shaped_4d": shaped_4d,
    "shaped_time_depth": shaped_time_depth,
    "volumetric_tiles": volumetric_tiles,
    "ome_2d": ome_2d,
    "ome_3d_time": ome_3d_time,
    "ome_5d_xyczt": ome_5d_xyczt,
    "ome_5d_xyzct": ome_5d_xyzct,
    "ome_5d_xytzc": ome_5d_xytzc,
    "ome_physical": ome_physical,
    "ome_rgb_channels": ome_rgb_channels,
    "ome_pyramid": ome_pyramid,
    "ome_missing_planes": ome_missing_planes,
    "ome_multi_file": ome_multi_file,
    "imagej_hyperstack": imagej_hyperstack,
    "imagej_single_ifd": imagej_single_ifd,
    "imagej_rgb": imagej_rgb,
    "imagej_labelled_channels": imagej_labelled_channels,
    "multi_series": multi_series,
    # containers and byte orders
    "bigtiff_tiled": bigtiff_tiled,
    "big_endian_tiled": big_endian_tiled,
    "big_endian_stack": big_endian_stack,
    "big_endian_strips": big_endian_strips,
    "big_endian_predictor": big_endian_predictor,
    # awkward storage
    "single_big_strip": single_big_strip,
    "single_raw_strip": single_raw_strip,
    "sparse_tiles": sparse_tiles,
}


def write_bad_files(directory: Path) -> dict[str, Path]:
    """Files a reader must refuse at open with a clear message."""
    files = {
        "empty": directory / "empty.tif",
        "random_bytes": directory / "random_bytes.tif",
        "png_named_tif": directory / "png_named_tif.tif",
        "truncated": directory / "truncated.tif",
        "truncated_imagej": directory / "truncated_imagej.tif",
        "needs_imagecodecs_lzw": directory / "needs_imagecodecs_lzw.tif",
        "needs_imagecodecs_zstd": directory / "needs_imagecodecs_zstd.tif",
    }
    files["empty"].write_bytes(b"")
    files["random_bytes"].write_bytes(np.random.default_rng(7).bytes(4096))
    files["png_named_tif"].write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    image = _random("bad_files", (300, 277), "uint16")
    tifffile.imwrite(files["truncated"], image, tile=(64, 64), compression="zlib")
    whole = files["truncated"].read_bytes()
    files["truncated"].write_bytes(whole[: len(whole) // 2])  # the IFD comes first: only tile data is lost
    stack = _random("bad_files", (6, 40, 50), "uint16")
    tifffile.imwrite(files["truncated_imagej"], stack, imagej=True, truncate=True, metadata={"axes": "ZYX"})
    whole = files["truncated_imagej"].read_bytes()
    files["truncated_imagej"].write_bytes(whole[: len(whole) // 2])  # a single IFD, then the planes
    tifffile.imwrite(files["needs_imagecodecs_lzw"], image, compression="lzw")
    tifffile.imwrite(files["needs_imagecodecs_zstd"], image, compression="zstd")
    return files
