"""NIfTI test images written by nibabel, and what they hold according to nibabel (the oracle).

Each case writes one file and returns its path. ``reference`` is nibabel's ``np.asanyarray(img.dataobj)``
put in the canonical axis order by these tests' own reading of the NIfTI standard: dimensions x, y, z, t and
a fifth for vectors, RGB(A) samples as channels, served as (t, c, z, y, x).
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np

Writer = Callable[[Path], Path]


def reference(path: Path | str) -> np.ndarray:
    """nibabel's values of ``path`` in canonical axis order."""
    values = np.asanyarray(nib.load(str(path)).dataobj)
    names = "xyztc"[: values.ndim]
    if values.dtype.names:  # RGB(A) voxels: their samples are the channels
        values = np.stack([values[name] for name in values.dtype.names], axis=-1)
        names += "c"
    axes = [axis for axis in "tczyx" if axis in names]
    return np.ascontiguousarray(values.transpose([names.index(axis) for axis in axes]))


def _smooth(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Values in [0, 1) that vary smoothly along x plus noise: compressible, and every voxel distinct enough
    to catch a misplaced one."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 0.5, shape[0]).reshape(-1, *[1] * (len(shape) - 1))
    return (ramp + 0.5 * rng.random(shape)) % 1.0


def _values(shape: tuple[int, ...], dtype: str, seed: int = 0) -> np.ndarray:
    dtype_ = np.dtype(dtype)
    base = _smooth(shape, seed)
    if dtype_.kind in "iu":
        info = np.iinfo(dtype_)
        low, high = max(info.min, -(2**40)), min(info.max, 2**40)
        return (low + base * (high - low)).astype(dtype_)
    if dtype_.kind == "c":
        return (base + 1j * _smooth(shape, seed + 1)).astype(dtype_)
    return (base * 1000 - 300).astype(dtype_)


def _save(image: nib.Nifti1Image, path: Path) -> Path:
    nib.save(image, str(path))
    return path


def _image(
    values: np.ndarray,
    *,
    nifti2: bool = False,
    big_endian: bool = False,
    affine: np.ndarray | None = None,
    units: tuple[str, str] | None = None,
    zooms: tuple[float, ...] | None = None,
) -> nib.Nifti1Image:
    header_class = nib.Nifti2Header if nifti2 else nib.Nifti1Header
    image_class = nib.Nifti2Image if nifti2 else nib.Nifti1Image
    header = header_class(endianness=">" if big_endian else "<")
    header.set_data_dtype(values.dtype)
    image = image_class(values, np.eye(4) if affine is None else affine, header=header)
    if zooms is not None:
        image.header.set_zooms(zooms)
    if units is not None:
        image.header.set_xyzt_units(*units)
    return image


def _scaled(values: np.ndarray, slope: float, inter: float, path: Path) -> Path:
    image = _image(values)
    image.header.set_slope_inter(slope, inter)  # stored raw, scaled on reading
    return _save(image, path)


def _rgb(shape: tuple[int, ...], samples: int, seed: int) -> np.ndarray:
    names = "RGBA"[:samples]
    voxels = np.zeros(shape, dtype=[(name, "u1") for name in names])
    rng = np.random.default_rng(seed)
    for name in names:
        voxels[name] = rng.integers(0, 256, shape)
    return voxels


TRANSLATED = np.array([[2.0, 0, 0, -10.5], [0, 3.0, 0, 20.0], [0, 0, 4.0, 30.25], [0, 0, 0, 1]])
ROTATED = np.array([[0, 2.0, 0, 5], [1.5, 0, 0, 6], [0, 0, 3.0, 7], [0, 0, 0, 1]])
FLIPPED = np.array([[-2.0, 0, 0, 90], [0, 2.0, 0, -126], [0, 0, 2.0, -72], [0, 0, 0, 1]])


def _qform_only(directory: Path) -> Path:
    image = _image(_values((12, 10, 8), "int16", 21), units=("micron", "sec"))
    image.set_qform(TRANSLATED, code=1)
    image.set_sform(None, code=0)
    return _save(image, directory / "a.nii")


CASES: dict[str, Writer] = {
    "2d_int16": lambda d: _save(_image(_values((40, 30), "int16"), units=("mm", "sec")), d / "a.nii"),
    "3d_uint16_gz_translated": lambda d: _save(
        _image(_values((50, 40, 30), "uint16", 1), affine=TRANSLATED, units=("mm", "sec")), d / "a.nii.gz"
    ),
    "3d_float32_big_endian": lambda d: _save(
        _image(_values((33, 22, 11), "float32", 2), big_endian=True), d / "a.nii"
    ),
    "3d_float64_rotated": lambda d: _save(
        _image(_values((13, 12, 11), "float64", 3), affine=ROTATED), d / "a.nii"
    ),
    "3d_int16_flipped": lambda d: _save(
        _image(_values((13, 12, 11), "int16", 4), affine=FLIPPED), d / "a.nii"
    ),
    "3d_int16_qform": _qform_only,
    "4d_int8_nifti2": lambda d: _save(
        _image(
            _values((20, 15, 10, 4), "int8", 5),
            nifti2=True,
            units=("micron", "msec"),
            zooms=(0.5, 0.5, 2, 150),
        ),
        d / "a.nii",
    ),
    "4d_float32_nifti2_gz_big_endian": lambda d: _save(
        _image(_values((21, 14, 9, 3), "float32", 6), nifti2=True, big_endian=True), d / "a.nii.gz"
    ),
    "5d_uint8_vector": lambda d: _save(_image(_values((11, 12, 13, 2, 3), "uint8", 7)), d / "a.nii"),
    "5d_float32_vector_gz_one_time_point": lambda d: _save(
        _image(_values((9, 8, 7, 1, 3), "float32", 8)), d / "a.nii.gz"
    ),
    "3d_uint32": lambda d: _save(_image(_values((17, 13, 5), "uint32", 9)), d / "a.nii"),
    "3d_int32_big_endian": lambda d: _save(
        _image(_values((17, 13, 5), "int32", 10), big_endian=True), d / "a.nii"
    ),
    "3d_int64": lambda d: _save(_image(_values((17, 13, 5), "int64", 11)), d / "a.nii"),
    "3d_uint64_gz": lambda d: _save(_image(_values((17, 13, 5), "uint64", 12)), d / "a.nii.gz"),
    "3d_uint16": lambda d: _save(_image(_values((17, 13, 5), "uint16", 13)), d / "a.nii"),
    "3d_complex64": lambda d: _save(_image(_values((17, 13, 5), "complex64", 14)), d / "a.nii"),
    "3d_complex128_big_endian": lambda d: _save(
        _image(_values((17, 13, 5), "complex128", 15), big_endian=True), d / "a.nii"
    ),
    "3d_int16_scaled": lambda d: _scaled(_values((30, 20, 10), "int16", 16), 2.5, -3.0, d / "a.nii"),
    "3d_uint8_scaled_gz": lambda d: _scaled(_values((30, 20, 10), "uint8", 17), 0.1, 0.0, d / "a.nii.gz"),
    "3d_float32_scaled": lambda d: _scaled(_values((30, 20, 10), "float32", 18), 1.0, 100.0, d / "a.nii"),
    "3d_complex64_scaled": lambda d: _scaled(_values((10, 9, 8), "complex64", 19), 3.0, 0.0, d / "a.nii"),
    "3d_int16_slope_1_inter_0": lambda d: _scaled(_values((30, 20, 10), "int16", 20), 1.0, 0.0, d / "a.nii"),
    "3d_rgb24": lambda d: _save(_image(_rgb((17, 13, 5), 3, 22)), d / "a.nii"),
    "4d_rgba32_nifti2_gz": lambda d: _save(_image(_rgb((9, 8, 7, 2), 4, 23), nifti2=True), d / "a.nii.gz"),
    "2d_rgb24": lambda d: _save(_image(_rgb((31, 23), 3, 24)), d / "a.nii"),
    # More than one seek-point span (4 MiB) of decompressed data: reads cross span boundaries.
    "3d_uint8_gz_spans": lambda d: _save(_image(_values((256, 200, 110), "uint8", 25)), d / "a.nii.gz"),
}


def gzip_file(source: Path, target: Path) -> Path:
    """``source`` gzipped as one member (what nibabel writes)."""
    target.write_bytes(gzip.compress(source.read_bytes(), compresslevel=1))
    return target


def patched(source: Path, target: Path, offset: int, value: bytes) -> Path:
    """A copy of ``source`` at ``target`` with ``value`` written over its bytes from ``offset`` on."""
    data = bytearray(source.read_bytes())
    data[offset : offset + len(value)] = value
    target.write_bytes(bytes(data))
    return target
