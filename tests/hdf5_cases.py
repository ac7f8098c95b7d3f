"""HDF5 files written by the field's own writers (h5py, hdf5plugin, npy2bdv; Imaris files built with h5py as
the Imaris 5.5 file format describes them), each with its pixels as h5py reads them, in canonical order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np


@dataclass
class Hdf5Case:
    path: Path
    levels: list[np.ndarray]  # canonical order, as h5py reads them (reinterpreted where the format says)
    dataset: str | None = None  # --dataset
    axes: str | None = None  # --axes
    files: list[Path] = field(default_factory=list)  # every file the source reads (default: path)

    def __post_init__(self) -> None:
        self.files = self.files or [self.path]


def read(path: Path, name: str) -> np.ndarray:
    """h5py's reading of one dataset (without file locking, as zarrfs opens files in the same process)."""
    with h5py.File(path, "r", locking=False) as file:
        return file[name][...]


def _pixels(shape: tuple[int, ...], dtype: str, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    kind = np.dtype(dtype).kind
    if kind == "f":
        return rng.normal(100, 30, shape).astype(dtype)
    info = np.iinfo(dtype)
    # Smooth-ish values, so that compressors compress, spread over the type's range.
    ramp = np.indices(shape).sum(axis=0) * 7 + rng.integers(0, 50, shape)
    return (
        ramp % (min(int(info.max), 2**31 - 1) - max(int(info.min), -(2**31)) + 1)
        + max(int(info.min), -(2**31))
    ).astype(dtype)


def _plain(
    name: str,
    shape: tuple[int, ...],
    dtype: str,
    axes: str | None = None,
    transpose: tuple[int, ...] | None = None,
    option_axes: str | None = None,
    **create: object,
) -> Callable[[Path], Hdf5Case]:
    """One dataset /data (plus a 1-D dataset that is never a candidate), written whole."""

    def write(directory: Path) -> Hdf5Case:
        path = directory / f"{name}.h5"
        data = _pixels(shape, dtype)
        with h5py.File(path, "w") as file:
            dataset = file.create_dataset("data", data=data, **create)  # type: ignore[arg-type]
            if axes is not None:
                dataset.attrs["axes"] = axes
            file.create_dataset("timestamps", data=np.arange(5.0))
        canonical = data if transpose is None else data.transpose(transpose)
        return Hdf5Case(path, [canonical], axes=option_axes)

    return write


def _sparse(directory: Path) -> Hdf5Case:
    """A 3-D dataset with a fill value where only some chunks were written (the rest unallocated)."""
    path = directory / "sparse.h5"
    with h5py.File(path, "w") as file:
        dataset = file.create_dataset(
            "volume", shape=(9, 200, 170), dtype="uint16", chunks=(3, 64, 64), compression="gzip", fillvalue=9
        )
        dataset[0:3, 0:64, 0:64] = 1000
        dataset[4:8, 100:190, 20:150] = _pixels((4, 90, 130), "uint16")
    return Hdf5Case(path, [read(path, "volume")])


def _compact(directory: Path) -> Hdf5Case:
    path = directory / "compact.h5"
    data = _pixels((20, 30), "float32")
    with h5py.File(path, "w") as file:
        plist = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        plist.set_layout(h5py.h5d.COMPACT)
        space = h5py.h5s.create_simple(data.shape)
        h5py.h5d.create(file.id, b"small", h5py.h5t.IEEE_F32LE, space, dcpl=plist).write(
            h5py.h5s.ALL, h5py.h5s.ALL, data
        )
    return Hdf5Case(path, [data])


def _dimension_labels(directory: Path) -> Hdf5Case:
    """Stored x, y, z (Fortran-minded writers), named with h5py dimension labels: transposed to z, y, x."""
    path = directory / "xyz_labels.h5"
    data = _pixels((70, 50, 6), "uint16")
    with h5py.File(path, "w") as file:
        dataset = file.create_dataset("stack", data=data, chunks=(32, 32, 2), **hdf5plugin.Zstd())
        for dimension, label in zip(dataset.dims, "xyz", strict=True):
            dimension.label = label
    return Hdf5Case(path, [data.transpose(2, 1, 0)])


def _user_block(directory: Path) -> Hdf5Case:
    path = directory / "userblock.h5"
    data = _pixels((64, 80), "int16")
    with h5py.File(path, "w", userblock_size=1024) as file:
        file.create_dataset("image", data=data, chunks=(32, 32), compression="gzip")
    with open(path, "r+b") as handle:
        handle.write(b"written by a tool that keeps a text header in the user block\n")
    return Hdf5Case(path, [data])


def write_pli(directory: Path) -> Hdf5Case:
    """A 3D-PLI section: /Image with pixel_width, its reduced levels in /pyramid/NN (00 the full size)."""
    path = directory / "section.h5"
    image = _pixels((300, 260), "uint8")
    levels = [image, image[::2, ::2].copy(), image[::4, ::4].copy()]
    with h5py.File(path, "w") as file:
        dataset = file.create_dataset("Image", data=image, chunks=(128, 128), compression="gzip")
        dataset.attrs["pixel_width"] = 1.3
        dataset.attrs["pixel_height"] = 1.3
        for index, level in enumerate(levels):
            file.create_dataset(f"pyramid/{index:02d}", data=level, chunks=(64, 64), compression="gzip")
    return Hdf5Case(path, levels)


def _chars(text: str) -> np.ndarray:
    """An Imaris attribute: a string as an array of single characters."""
    return np.array(list(text), dtype="S1")


IMARIS_SIZE = (7, 90, 75)  # z, y, x of level 0
IMARIS_CHANNELS = (("DAPI", "0.000 0.000 1.000"), ("GFP", "0.000 1.000 0.000"))


def write_imaris(directory: Path, times: int = 2) -> Hdf5Case:
    """An Imaris 5.5 file: 3 resolution levels, ``times`` time points, 2 channels; Data arrays padded to
    whole chunks beyond the image, as Imaris writes them."""
    path = directory / f"image_t{times}.ims"
    z, y, x = IMARIS_SIZE
    levels: list[np.ndarray] = []
    with h5py.File(path, "w") as file:
        for name, value in (
            ("DataSetDirectoryName", "DataSet"),
            ("DataSetInfoDirectoryName", "DataSetInfo"),
            ("ImarisDataSet", "ImarisDataSet"),
            ("ImarisVersion", "5.5.0"),
            ("ThumbnailDirectoryName", "Thumbnail"),
        ):
            file.attrs[name] = _chars(value)
        file.attrs["NumberOfDataSets"] = np.array([1], np.uint32)
        info = file.create_group("DataSetInfo")
        image = info.create_group("Image")
        for name, value in (("X", x), ("Y", y), ("Z", z), ("Unit", "um"), ("Noc", len(IMARIS_CHANNELS))):
            image.attrs[name] = _chars(str(value))
        for axis, extent, step in ((0, x, 0.25), (1, y, 0.25), (2, z, 1.5)):
            image.attrs[f"ExtMin{axis}"] = _chars("-10.000")
            image.attrs[f"ExtMax{axis}"] = _chars(f"{-10 + extent * step:.3f}")
        for c, (name, color) in enumerate(IMARIS_CHANNELS):
            channel = info.create_group(f"Channel {c}")
            channel.attrs["Name"] = _chars(name)
            channel.attrs["Color"] = _chars(color)
        time_info = info.create_group("TimeInfo")
        time_info.attrs["DatasetTimePoints"] = _chars(str(times))
        time_info.attrs["FileTimePoints"] = _chars(str(times))
        for t in range(times):
            time_info.attrs[f"TimePoint{t + 1}"] = _chars(f"2026-11-29 10:00:{t * 2:02d}.000")
        size = IMARIS_SIZE
        full = np.stack(
            [np.stack([_pixels(size, "uint16", seed=10 * t + c) for c in range(2)]) for t in range(times)]
        )
        for level in range(3):
            # Sizes halved and rounded down, given by ImageSizeX/Y/Z (not what halving rounded up makes).
            size = tuple(extent // 2**level for extent in IMARIS_SIZE)
            pixels = full[..., :: 2**level, :: 2**level, :: 2**level][..., : size[0], : size[1], : size[2]]
            levels.append(pixels if times > 1 else pixels[0])
            chunk = (4, 32, 32)
            padded = tuple(-(-extent // block) * block for extent, block in zip(size, chunk, strict=True))
            for t in range(times):
                for c in range(2):
                    group = file.create_group(f"DataSet/ResolutionLevel {level}/TimePoint {t}/Channel {c}")
                    data = np.zeros(padded, np.uint16)
                    data[: size[0], : size[1], : size[2]] = pixels[t, c]
                    group.create_dataset(
                        "Data", data=data, chunks=chunk, compression="gzip", compression_opts=2
                    )
                    for axis, extent in zip("ZYX", size, strict=True):
                        group.attrs[f"ImageSize{axis}"] = _chars(str(extent))
                    group.create_dataset(
                        "Histogram",
                        data=np.bincount(pixels[t, c].ravel() >> 8, minlength=256).astype(np.uint64),
                    )
        file.create_dataset("Thumbnail/Data", data=np.zeros((256, 512), np.uint8))
    return Hdf5Case(path, levels)


def write_bdv(directory: Path, times: int = 2, setups: int = 2) -> Hdf5Case:
    """A BigDataViewer file written by npy2bdv (uint16 stored as int16, read back as uint16), with its XML."""
    import npy2bdv

    path = directory / f"bdv_t{times}_s{setups}.h5"
    writer = npy2bdv.BdvWriter(
        str(path),
        nchannels=setups,
        subsamp=((1, 1, 1), (2, 2, 2)),
        blockdim=((4, 32, 32), (4, 16, 16)),
        compression="gzip",
    )
    volumes = [[_pixels((9, 70, 66), "uint16", seed=t * 10 + c) for c in range(setups)] for t in range(times)]
    for t in range(times):
        for c in range(setups):
            writer.append_view(
                volumes[t][c], time=t, channel=c, voxel_size_xyz=(0.4, 0.4, 2.0), voxel_units="um"
            )
    writer.write_xml()
    writer.close()
    levels = []
    for level in range(2):
        stacked = np.stack(
            [
                np.stack(
                    [read(path, f"t{t:05d}/s{c:02d}/{level}/cells").view(np.uint16) for c in range(setups)]
                )
                for t in range(times)
            ]
        )
        levels.append(stacked if times > 1 else stacked[0])
    return Hdf5Case(path, levels, files=[path, path.with_suffix(".xml")])


CASES: dict[str, Callable[[Path], Hdf5Case]] = {
    "deflate_2d_uint8": _plain("deflate_2d_uint8", (300, 257), "uint8", chunks=(64, 64), compression="gzip"),
    "shuffle_deflate_3d_uint16": _plain(
        "shuffle_deflate_3d_uint16",
        (20, 130, 110),
        "uint16",
        chunks=(8, 64, 64),
        compression="gzip",
        shuffle=True,
    ),
    "raw_czyx_int32": _plain("raw_czyx_int32", (2, 5, 70, 60), "int32", axes="czyx", chunks=(1, 2, 32, 32)),
    "zcyx_option_float32": _plain(
        "zcyx_option_float32",
        (4, 2, 50, 40),
        "float32",
        transpose=(1, 0, 2, 3),
        option_axes="zcyx",
        chunks=(2, 1, 16, 16),
        compression="gzip",
    ),
    "contiguous_2d_float64": _plain("contiguous_2d_float64", (100, 123), "float64"),
    "contiguous_3d_int8": _plain("contiguous_3d_int8", (5, 60, 70), "int8"),
    "big_endian_int16": _plain("big_endian_int16", (90, 100), ">i2", chunks=(32, 48), compression="gzip"),
    "uint32_fletcher32": _plain("uint32_fletcher32", (64, 80), "uint32", chunks=(32, 32), fletcher32=True),
    "lzf_uint16": _plain("lzf_uint16", (3, 64, 90), "uint16", chunks=(1, 32, 32), compression="lzf"),
    "blosc_lz4_int64": _plain(
        "blosc_lz4_int64", (50, 70), "int64", chunks=(16, 32), **hdf5plugin.Blosc(cname="lz4")
    ),
    "hdf5plugin_lz4_uint16": _plain(
        "hdf5plugin_lz4_uint16", (60, 50), "uint16", chunks=(32, 32), **hdf5plugin.LZ4()
    ),
    "bitshuffle_uint16": _plain(
        "bitshuffle_uint16", (60, 50), "uint16", chunks=(32, 32), **hdf5plugin.Bitshuffle()
    ),
    "zstd_tczyx_uint8": _plain(
        "zstd_tczyx_uint8", (2, 2, 3, 40, 50), "uint8", chunks=(1, 1, 2, 16, 16), **hdf5plugin.Zstd()
    ),
    "sparse_fill_value": _sparse,
    "compact_float32": _compact,
    "dimension_labels_xyz": _dimension_labels,
    "user_block": _user_block,
    "pli": write_pli,
    "imaris": write_imaris,
    "imaris_one_time_point": lambda directory: write_imaris(directory, times=1),
    "bdv": write_bdv,
    "bdv_one_time_point": lambda directory: write_bdv(directory, times=1),
}
