"""Open-time validation: refuse what cannot be served (not a TIFF, no such series, a codec that is
missing, data cut short) with a one-line message, before any chunk is requested."""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Sequence

import numpy as np
import tifffile

from zarrfs.errors import SourceError, one_line
from zarrfs.sources.pixelfile import SourceFile
from zarrfs.sources.tiff.geometry import check_geometry, is_whole, segment_kind
from zarrfs.sources.tiff.metadata import compression_name
from zarrfs.sources.tiff.structure import check_ome_planes, count_ifds

TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF, both byte orders

# Formats people mistake for TIFF, named in the error instead of "not a TIFF header".
_OTHER_FORMAT_SIGNATURES = {
    b"\x89PNG": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"GIF8": "GIF",
    b"PK\x03\x04": "ZIP",
    b"\x89HDF": "HDF5",
    b"ZISRAWFILE": "Zeiss CZI",
    b"%PDF": "PDF",
}


def is_tiff_header(header: bytes) -> bool:
    """True if ``header`` (the first bytes of a file) starts like a classic TIFF or a BigTIFF."""
    return header[:4] in TIFF_SIGNATURES


def _describe_foreign_header(header: bytes) -> str:
    for signature, name in _OTHER_FORMAT_SIGNATURES.items():
        if header.startswith(signature):
            return f"this is a {name} file"
    return "no TIFF header"


def open_tifffile(path: str, file: SourceFile | None = None) -> tifffile.TiffFile:
    """The file parsed by tifffile, series included, or a SourceError saying why it is not a valid TIFF.
    ``file`` is where the bytes are, when not a local file at ``path`` (an object at a URL: its data is read
    from that one object, never from files its OME metadata names)."""
    try:
        if file is not None:
            header = file.read(min(16, file.size), 0)
        else:
            with open(path, "rb") as handle:
                header = handle.read(16)
    except OSError as error:
        raise SourceError(f"cannot read TIFF file ({error.strerror}): {path}") from None
    if not header:
        raise SourceError(f"not a valid TIFF file (file is empty): {path}")
    if not is_tiff_header(header):
        raise SourceError(f"not a valid TIFF file ({_describe_foreign_header(header)}): {path}")
    try:
        if file is not None:
            tiff = tifffile.TiffFile(file.stream(), name=os.path.basename(path), _multifile=False)
        else:
            tiff = tifffile.TiffFile(path)
    except SourceError:
        raise
    except Exception as error:
        raise SourceError(f"not a valid TIFF file ({one_line(error)}): {path}") from None
    try:
        # Before tifffile reads all IFDs and builds its series: a loop would hang it, absurd OME sizes
        # exhaust memory.
        check_ome_planes(tiff, count_ifds(tiff, path), path)
        tiff.series  # noqa: B018 - parses the series structure now, so failures surface here
    except Exception as error:
        problem = _open_error(error, tiff, path)
        tiff.close()
        raise problem from None
    return tiff


def _open_error(error: Exception, tiff: tifffile.TiffFile, path: str) -> SourceError:
    if isinstance(error, SourceError):
        return error
    if isinstance(error, MemoryError):
        return SourceError(f"not a valid TIFF file (its structure needs too much memory): {path}")
    try:
        check_geometry(tiff.pages.first, path)  # names the bad tag where tifffile failed on one
    except SourceError as bad_tag:
        return bad_tag
    except IndexError:  # no first page: tifffile's message says more
        pass
    return SourceError(f"not a valid TIFF file ({one_line(error)}): {path}")


def select_series(tiff: tifffile.TiffFile, index: int, path: str) -> tifffile.TiffPageSeries:
    count = len(tiff.series)
    if count == 0:
        raise SourceError(f"not a valid TIFF file (it contains no images): {path}")
    if not 0 <= index < count:
        available = "only series 0" if count == 1 else f"series 0-{count - 1}"
        raise SourceError(f"series {index} does not exist: the file has {count} series ({available}): {path}")
    return tiff.series[index]


# ----------------------------------------------------------------------------------------------------------
# Codecs


def check_decodable(keyframe: tifffile.TiffPage, path: str) -> None:
    """Fail at open, not at the first chunk, when tifffile cannot decode this kind of page.

    tifffile resolves codecs when building a page's decode function and, if one is unknown, returns a function
    that raises on every call; calling it for an empty segment touches no pixel data.
    """
    what = f"{compression_name(keyframe)} compression"
    try:
        keyframe.decode(None, 0)
    except Exception as error:
        reason = one_line(error)
        if "imagecodecs" in reason:
            if "PREDICTOR" in reason:
                what = f"{tifffile.PREDICTOR(keyframe.predictor).name} predictor"
            raise _missing_codec_error(what, path) from None
        if "COMPRESSION" in reason:
            raise SourceError(f"cannot decode {what}: tifffile does not support it: {path}") from None
        raise SourceError(f"cannot decode this TIFF ({reason}): {path}") from None
    if keyframe.compression != 1 and _decoder_missing(keyframe.compression):
        raise _missing_codec_error(what, path)


def _decoder_missing(compression: int) -> bool:
    """True if the codec for ``compression`` is a placeholder that raises ImportError when called.

    Without imagecodecs, tifffile substitutes pure-Python codecs whose module may be missing (its zstd needs
    Python 3.14); imagecodecs builds lacking a codec provide stubs. Both only fail once called: empty input
    tells them apart from real decoders, which reject it with an ordinary error.
    """
    try:
        tifffile.TIFF.DECOMPRESSORS[compression](b"")
    except ImportError:
        return True
    except Exception:  # a real decoder refusing empty input
        return False
    return False


def _missing_codec_error(what: str, path: str) -> SourceError:
    if importlib.util.find_spec("imagecodecs") is None:
        return SourceError(f"cannot decode {what}: install imagecodecs (pip install imagecodecs): {path}")
    return SourceError(f"cannot decode {what}: the installed imagecodecs lacks this codec: {path}")


# ----------------------------------------------------------------------------------------------------------
# Truncation: files cut short while copying lose their tail, so compare where the data ends with the size.


def check_contiguous_data(
    tiff: tifffile.TiffFile, level: tifffile.TiffPageSeries, pages: int, path: str
) -> None:
    """``pages`` uncompressed pages stored back to back from the level's data offset in ``tiff``."""
    assert level.dataoffset is not None  # the caller picked this reader because it is set
    _check_data_end(level.dataoffset + pages * level.keyframe.nbytes, tiff, path)


def check_paged_data(
    tiff: tifffile.TiffFile, pages: Sequence[tifffile.TiffPage | tifffile.TiffFrame | None], path: str
) -> None:
    """Check the data of the first and last pages. Pages from other files of a multi-file OME-TIFF are
    checked when read."""
    present = [page for page in pages if page is not None]
    ends = [_data_end(page, path) for page in present[:1] + present[-1:] if page.parent is tiff]
    if ends:
        _check_data_end(max(ends), tiff, path)


def check_imagej_stack(tiff: tifffile.TiffFile, series: tifffile.TiffPageSeries, path: str) -> None:
    """ImageJ stacks keep all planes after the first IFD's data. When the file was cut short, tifffile drops
    the ImageJ series and offers only the planes that have IFDs, which would silently hide the loss."""
    metadata = tiff.imagej_metadata
    if series.kind == "imagej" or not metadata:
        return
    first = tiff.pages.first
    images = metadata.get("images", 1)
    if is_whole(images) and first.is_final and images > len(tiff.pages) and _data_end(first, path):
        _check_data_end(int(first.dataoffsets[0]) + images * first.nbytes, tiff, path)


def _data_end(page: tifffile.TiffPage | tifffile.TiffFrame, path: str) -> int:
    """Where the page's last tile or strip ends (0 without any). Tag values are as stored: they may be bytes
    (a tag of type BYTE), floats, negative (a signed type) or beyond any file (a BigTIFF offset of 2**63)."""
    kind = segment_kind(page)
    offsets, bytecounts = (
        _positions(table, kind, page, path) for table in (page.dataoffsets, page.databytecounts)
    )
    count = min(offsets.size, bytecounts.size)  # extra entries of the longer table are never used
    if count == 0:
        return 0
    offsets, bytecounts = offsets[:count], bytecounts[:count]
    largest = int(max(offsets.max(), bytecounts.max()))
    if largest >= 2**63:  # no file reaches that far; below it, the uint64 sums cannot overflow
        raise SourceError(
            f"invalid {kind} offsets in page {page.index}: byte {largest} lies beyond the end of the file: "
            f"{path}"
        )
    return int((offsets + bytecounts).max())


def _positions(
    values: object, kind: str, page: tifffile.TiffPage | tifffile.TiffFrame, path: str
) -> np.ndarray:
    """A tile or strip table as uint64, or a SourceError where its values are not byte positions."""
    table = np.asarray(values)
    if table.dtype.kind in "fO" and isinstance(values, tuple) and all(is_whole(value) for value in values):
        # Python ints beyond int64, which numpy turns into floats or objects.
        with contextlib.suppress(OverflowError):  # mixed with negative ones: left as not positions
            table = np.array(values, np.uint64)
    if table.dtype.kind not in "iu" or table.ndim != 1 or (table.dtype.kind == "i" and (table < 0).any()):
        raise SourceError(f"invalid {kind} offsets in page {page.index}: not positions in a file: {path}")
    return table.astype(np.uint64)


def _check_data_end(end: int, tiff: tifffile.TiffFile, path: str) -> None:
    size = tiff.filehandle.size  # the file's, or the remote object's, size as opened
    if end > size:
        raise SourceError(
            f"file is truncated: its image data ends at byte {end} but the file has {size} bytes: {path}"
        )
