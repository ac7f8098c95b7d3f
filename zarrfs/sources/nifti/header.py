"""A NIfTI header, parsed by nibabel, turned into where the voxels lie and what the image is.

NIfTI stores x fastest (Fortran order) with dimensions x, y, z, t and a fifth for vectors: as bytes lie, the
C-order array is (c, t, z, y, x) for a 5-D image (fewer leading axes for fewer dimensions), and RGB(A) voxels
add their samples as the fastest axis. The canonical view keeps t before c. Values are those nibabel's
``dataobj`` gives: raw, or scaled by ``scl_slope``/``scl_inter`` into the type nibabel picks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from zarrfs.errors import SourceError
from zarrfs.sources.base import CANONICAL_AXES, PhysicalSize

# Names of the NIfTI dimensions 1-5, the fifth being vector components (NGFF's c).
_DIMENSIONS = "xyztc"
MAX_DIMENSIONS = len(_DIMENSIONS)
# nibabel's names for xyzt_units -> NGFF's (units NGFF has no name for, such as Hz or ppm, are left out).
_SPACE_UNITS = {"meter": "meter", "mm": "millimeter", "micron": "micrometer"}
_TIME_UNITS = {"sec": "second", "msec": "millisecond", "usec": "microsecond"}
# Affine entries off the diagonal below this share of the largest one count as zero (float32 noise).
_AFFINE_TOLERANCE = 1e-6
# Served types: what Zarr stores (numpy's longdouble and the like are refused).
_SERVED_KINDS = {"i", "u", "f", "c"}
_SERVED_ITEMSIZES = {1, 2, 4, 8, 16}


@dataclass(frozen=True)
class Scaling:
    """nibabel's read scaling: ``raw * slope + inter``, in the type nibabel's ``apply_read_scaling`` picks."""

    slope: float
    inter: float

    def apply(self, raw: np.ndarray) -> np.ndarray:
        from nibabel.volumeutils import apply_read_scaling

        # As nibabel's ArrayProxy: the header's float32 factors as Python floats, hence float64 arithmetic.
        scaled: np.ndarray = apply_read_scaling(raw, self.slope, self.inter)
        return scaled


@dataclass(frozen=True)
class VoxelLayout:
    """Where the voxels lie: a C-order array of ``file_shape`` elements of ``file_dtype`` (in the file's byte
    order; one sample of an RGB voxel) from byte ``offset`` of the (decompressed) file on."""

    offset: int
    file_shape: tuple[int, ...]
    file_dtype: np.dtype
    order: tuple[int, ...]  # canonical axis i is file axis order[i]
    samples: int  # 3 or 4 for RGB(A) voxels (the last file axis), else 0

    @property
    def byte_strides(self) -> tuple[int, ...]:
        strides, step = [], self.file_dtype.itemsize
        for extent in reversed(self.file_shape):
            strides.append(step)
            step *= extent
        return tuple(reversed(strides))

    @property
    def nbytes(self) -> int:
        return math.prod(self.file_shape) * self.file_dtype.itemsize

    @property
    def end(self) -> int:
        return self.offset + self.nbytes

    @property
    def shape(self) -> tuple[int, ...]:
        """The canonical shape."""
        return tuple(self.file_shape[axis] for axis in self.order)

    @property
    def storage_unit(self) -> tuple[int, ...]:
        """Whole rows of x, with all samples of a voxel: any band of them is read without waste (gzip spans
        are cached between the chunks that share them)."""
        row_axes = 2 if self.samples else 1  # the fastest file axes: x, and the samples of RGB voxels
        first_row_axis = len(self.file_shape) - row_axes
        return tuple(self.file_shape[axis] if axis >= first_row_axis else 1 for axis in self.order)

    def file_region(self, region: tuple[slice, ...]) -> tuple[slice, ...]:
        """The canonical ``region`` in file axis order."""
        file_region = [slice(0, 0)] * len(self.file_shape)
        for axis, part in zip(self.order, region, strict=True):
            file_region[axis] = part
        return tuple(file_region)


@dataclass(frozen=True)
class NiftiImage:
    """Everything the source needs from the header."""

    version: int
    layout: VoxelLayout
    axes: str
    scaling: Scaling | None
    dtype: np.dtype  # served: native byte order, after scaling
    physical_sizes: dict[str, PhysicalSize]
    origin: dict[str, PhysicalSize]
    header: dict[str, Any]  # every header field, JSON-safe
    description: str


def parse_header(raw: bytes, version: int, path: str) -> NiftiImage:
    """Read the ``version`` header at the start of ``raw``; one-line SourceError for what zarrfs cannot
    serve."""
    import nibabel
    from nibabel.spatialimages import HeaderDataError

    klass = nibabel.Nifti1Header if version == 1 else nibabel.Nifti2Header
    try:
        header = klass(raw[: klass.template_dtype.itemsize], check=False)
        file_dtype = header.get_data_dtype()
        slope, inter = header.get_slope_inter()
    except (HeaderDataError, KeyError, ValueError) as error:
        raise SourceError(f"not a valid NIfTI-{version} header ({error}): {path}") from None
    if file_dtype.kind not in _SERVED_KINDS and not file_dtype.names:
        code = int(header["datatype"])
        raise SourceError(f"NIfTI datatype {code} ({_datatype_name(code)}) has no Zarr equivalent: {path}")
    dimensions, samples = _dimensions(header, file_dtype, path)
    names = _DIMENSIONS[: len(dimensions)]
    if samples:  # RGB(A): the samples of a voxel, fastest of all, are its channels
        file_names = (*reversed(names), "c")
        file_shape = (*reversed(dimensions), samples)
        file_dtype = np.dtype(file_dtype[0])
    else:
        file_names, file_shape = tuple(reversed(names)), tuple(reversed(dimensions))
    file_dtype = file_dtype.newbyteorder(header.endianness) if file_dtype.itemsize > 1 else file_dtype
    axes = "".join(axis for axis in CANONICAL_AXES if axis in file_names)
    order = tuple(file_names.index(axis) for axis in axes)
    offset = _data_offset(header, path)
    # The NIfTI standard leaves RGB values unscaled; nibabel cannot scale them either.
    scaling = None if samples or slope is None or (slope, inter) == (1, 0) else Scaling(slope, inter)
    native = file_dtype.newbyteorder("=")
    dtype = native if scaling is None else scaling.apply(np.zeros(1, native)).dtype
    if dtype.kind not in _SERVED_KINDS or dtype.itemsize not in _SERVED_ITEMSIZES:
        raise SourceError(
            f"NIfTI values scaled to {dtype} (as nibabel scales them) have no Zarr equivalent: {path}"
        )
    space, time = header.get_xyzt_units()
    return NiftiImage(
        version=version,
        layout=VoxelLayout(offset, file_shape, file_dtype, order, samples),
        axes=axes,
        scaling=scaling,
        dtype=dtype,
        physical_sizes=_physical_sizes(header, names, _SPACE_UNITS.get(space), _TIME_UNITS.get(time)),
        origin=_origin(header, names, _SPACE_UNITS.get(space)),
        header=_header_fields(header),
        description=_describe(version, header, file_dtype, samples, scaling, dtype),
    )


def _datatype_name(code: int) -> str:
    from nibabel.nifti1 import data_type_codes

    return str(data_type_codes.niistring.get(code, "unknown"))


def _dimensions(header: Any, dtype: np.dtype, path: str) -> tuple[list[int], int]:
    """The image's dimensions (x first) and the samples per voxel (0 unless RGB or RGBA)."""
    dim = [int(value) for value in header["dim"]]
    count = dim[0]
    if not 1 <= count <= 7:
        raise SourceError(f"NIfTI header gives {count} dimensions (dim[0]), not 1 to 7: {path}")
    dimensions = dim[1 : count + 1]
    if min(dimensions) < 1:
        raise SourceError(f"NIfTI dimensions {dimensions} include sizes below 1: {path}")
    samples = len(dtype.names) if dtype.names else 0
    # Trailing dimensions of size 1 add nothing; RGB voxels already fill the channel axis.
    while len(dimensions) > (MAX_DIMENSIONS - 1 if samples else MAX_DIMENSIONS) and dimensions[-1] == 1:
        dimensions.pop()
    if len(dimensions) > MAX_DIMENSIONS or (samples and len(dimensions) == MAX_DIMENSIONS):
        kind = "RGB NIfTI images" if samples else "NIfTI images"
        most = MAX_DIMENSIONS - 1 if samples else MAX_DIMENSIONS
        raise SourceError(
            f"{kind} of more than {most} dimensions are not served (this one has {dim}): {path}"
        )
    if len(dimensions) < 2:
        raise SourceError(f"a NIfTI image of one dimension ({dimensions[0]} voxels) is not an image: {path}")
    return dimensions, samples


def _data_offset(header: Any, path: str) -> int:
    offset = header["vox_offset"].item()
    size = header.template_dtype.itemsize
    if not math.isfinite(offset) or offset < size:
        raise SourceError(f"NIfTI vox_offset {offset} lies inside the {size}-byte header: {path}")
    return int(offset)  # as nibabel reads it


def _physical_sizes(
    header: Any, names: str, space_unit: str | None, time_unit: str | None
) -> dict[str, PhysicalSize]:
    """pixdim[1..4] for x, y, z, t, where positive and finite (the vector dimension has none)."""
    sizes = {}
    for index, axis in enumerate(names, start=1):
        value = float(header["pixdim"][index])
        if axis != "c" and math.isfinite(value) and value > 0:
            sizes[axis] = PhysicalSize(value, time_unit if axis == "t" else space_unit)
    return sizes


def _origin(header: Any, names: str, space_unit: str | None) -> dict[str, PhysicalSize]:
    """The first voxel's position from the sform (else the qform) where that affine only scales and shifts
    (NGFF's scale and translation); left out for rotated, sheared or flipped grids, and for headers with no
    coded affine (nibabel's fallback from pixdim places nothing)."""
    affine, code = header.get_sform(coded=True)
    if not code:
        affine, code = header.get_qform(coded=True)
    if not code or affine is None:
        return {}
    linear = np.asarray(affine, dtype=np.float64)[:3, :3]
    diagonal = np.diag(linear)
    off_diagonal = linear - np.diag(diagonal)
    if not (np.all(diagonal > 0) and np.all(np.abs(off_diagonal) <= _AFFINE_TOLERANCE * diagonal.max())):
        return {}
    return {
        axis: PhysicalSize(float(affine[index, 3]), space_unit)
        for index, axis in enumerate("xyz")
        if axis in names
    }


def _json_safe(value: np.ndarray) -> Any:
    """A header field as JSON: text for strings, numbers (non-finite ones spelled as Zarr v3 fill values
    spell them), lists for arrays."""
    if value.ndim:
        return [_json_safe(item) for item in value]
    if value.dtype.kind == "S":
        return value.item().decode("latin-1").rstrip("\0")
    item = value.item()
    if isinstance(item, float) and not math.isfinite(item):
        return "NaN" if math.isnan(item) else ("Infinity" if item > 0 else "-Infinity")
    return item


def _header_fields(header: Any) -> dict[str, Any]:
    fields = header.structarr
    return {name: _json_safe(np.asarray(fields[name])) for name in fields.dtype.names}


def _describe(
    version: int, header: Any, file_dtype: np.dtype, samples: int, scaling: Scaling | None, dtype: np.dtype
) -> str:
    order = "big-endian" if header.endianness == ">" else "little-endian"
    voxels = {3: "RGB", 4: "RGBA"}.get(samples, file_dtype.newbyteorder("=").name)
    parts = [f"NIfTI-{version}", order, voxels]
    if scaling is not None:
        parts.append(f"scaled by {scaling.slope:g} + {scaling.inter:g} to {dtype.name}")
    return ", ".join(parts)
