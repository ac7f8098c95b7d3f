"""Random access into a gzip file, read-only: seek points taken the first time the stream is read through.

A gzip stream can only be decompressed from its start. The first pass through it (done piecewise, as far as
reads need, never at open) keeps the decompressor's state every ``span`` bytes of output: a copy of zlib's
state, window included (about 40 KiB), and the compressed offset it resumes at. Any span is then decompressed
from its own seek point by any thread (zlib releases the GIL), and decompressed spans are kept in a bounded
cache, so neighbouring chunks cost one decompression. Concatenated gzip members (pigz, bgzip) are followed.

A damaged or truncated stream is served up to the damage: spans end where decompression stopped, and only
reads that need bytes past it fail.
"""

from __future__ import annotations

import math
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from zarrfs.errors import SourceError
from zarrfs.lru import ByteLRUCache
from zarrfs.sources.pixelfile import SourceFile

GZIP_MAGIC = b"\x1f\x8b"
# zlib's wbits for a gzip member (header and trailer checked).
_GZIP_WBITS = 16 + zlib.MAX_WBITS
# Compressed bytes fed to zlib at a time: large enough to keep Python's overhead out of the way, small enough
# that the output lost to a zlib error within one piece stays small.
_INPUT_PIECE = 256 * 2**10
# Seek points are at least this far apart; more are not kept than MAX_SEEK_POINTS (~40 KiB each, so at most
# about 20 MiB for any file), spreading them further on streams over 2 GiB.
MIN_SPAN_BYTES = 4 * 2**20
MAX_SEEK_POINTS = 512


def span_bytes(stream_bytes: int) -> int:
    """The distance between seek points for a decompressed stream of ``stream_bytes``: whole MiB."""
    wanted = max(MIN_SPAN_BYTES, math.ceil(stream_bytes / MAX_SEEK_POINTS))
    return math.ceil(wanted / 2**20) * 2**20


def gunzip_prefix(read: Callable[[int, int], bytes], size: int) -> bytes:
    """Up to ``size`` bytes from the start of the decompressed stream, reading the compressed one with
    ``read(length, offset)`` (which may return fewer bytes at the end) only as far as they need. Less (maybe
    nothing) when the stream is shorter, damaged or not gzip at all."""
    inflater = zlib.decompressobj(_GZIP_WBITS)
    pieces: list[bytes] = []
    produced = offset = 0
    while produced < size and not inflater.eof:
        data = read(16 * 2**10, offset)
        if not data:
            break
        offset += len(data)
        try:
            piece = inflater.decompress(data, size - produced)
        except zlib.error:
            break
        pieces.append(piece)
        produced += len(piece)
    return b"".join(pieces)[:size]


@dataclass(frozen=True)
class _SeekPoint:
    """The decompressor as it stands at decompressed byte ``out_offset`` (a span's start): ``inflater`` has
    consumed every compressed byte before ``in_offset`` and produced every decompressed byte before."""

    inflater: zlib._Decompress
    in_offset: int
    out_offset: int


@dataclass(frozen=True)
class _Span:
    """A span's decompressed bytes; shorter than the span where the stream ends or decompression failed,
    which ``problem`` then says."""

    data: bytes
    problem: str | None
    next_point: _SeekPoint | None  # where the following span starts (None when this one is short)


class GzipStream:
    """The decompressed bytes of a gzip file, read at any offset by any number of threads."""

    def __init__(self, file: SourceFile, span: int, cache_bytes: int) -> None:
        self._file = file
        self.span = span
        self._points = [_SeekPoint(zlib.decompressobj(_GZIP_WBITS), 0, 0)]  # span k starts at point k
        self._points_lock = threading.Lock()
        self._spans: ByteLRUCache[_Span] = ByteLRUCache(
            cache_bytes, sizeof=lambda span: len(span.data), keep_oversized=True
        )

    @property
    def seek_points(self) -> int:
        """How many seek points the stream has so far (one per span read through)."""
        return len(self._points)

    def read_rows_into(self, rows: np.ndarray, offset: int, row_stride: int) -> None:
        """Fill the C-contiguous uint8 array ``rows`` (count, length) with ``length`` decompressed bytes from
        each of its rows ``row_stride`` bytes apart from ``offset`` on (SourceFile's call, on the stream)."""
        count, length = rows.shape
        stride = row_stride if count > 1 else length
        end = offset + (count - 1) * stride + length
        for index in range(offset // self.span, (end - 1) // self.span + 1):
            start = index * self.span
            if not _rows_meeting(offset, stride, count, length, start, start + self.span):
                continue  # a gap between rows spans this whole span: never decompressed
            span = self._span(index)
            _copy_rows(rows, offset, stride, np.frombuffer(span.data, np.uint8), start)
            if start + len(span.data) < min(end, start + self.span):
                raise SourceError(f"{span.problem}, but bytes up to {end} are needed: {self._file.path}")

    def _span(self, index: int) -> _Span:
        return self._spans.get_or_compute(index, lambda: self._inflate(index))

    def _inflate(self, index: int) -> _Span:
        # Seek points are found in order: read through the spans before this one first (each of them is
        # cached, and concurrent readers wait for a span under way instead of decompressing it twice).
        while len(self._points) <= index:
            known = len(self._points) - 1
            before = self._span(known)
            if before.next_point is None:  # the stream ends (or breaks) before this span
                return _Span(b"", before.problem, None)
            self._add_point(known + 1, before.next_point)
        span = _inflate_span(self._file, self._points[index], self.span)
        if span.next_point is not None:
            self._add_point(index + 1, span.next_point)
        return span

    def _add_point(self, index: int, point: _SeekPoint) -> None:
        with self._points_lock:
            if len(self._points) == index:
                self._points.append(point)


def _inflate_span(file: SourceFile, point: _SeekPoint, length: int) -> _Span:
    """Decompress ``length`` bytes from ``point`` on (fewer where the stream ends or is damaged)."""
    inflater = point.inflater.copy()
    in_offset = point.in_offset
    pending = b""  # compressed bytes from in_offset on, read but not yet consumed
    pieces: list[bytes] = []
    produced = 0
    problem = None
    while produced < length:
        if not pending:
            pending = file.pread(_INPUT_PIECE, in_offset)
        if inflater.eof:  # a member ended: another may follow (pigz, bgzip, cat a.gz b.gz)
            if not pending:
                problem = "the gzip stream ends"
                break
            inflater = zlib.decompressobj(_GZIP_WBITS)
        if not pending:
            problem = f"the gzip file is truncated: its compressed data stops at byte {in_offset}"
            break
        try:
            piece = inflater.decompress(pending, length - produced)
        except zlib.error as error:
            problem = f"the gzip data is damaged after compressed byte {in_offset} ({error})"
            break
        left = inflater.unused_data if inflater.eof else inflater.unconsumed_tail
        in_offset += len(pending) - len(left)
        pending = left
        pieces.append(piece)
        produced += len(piece)
    data = b"".join(pieces)
    end = point.out_offset + produced
    if produced < length:
        return _Span(data, f"{problem} (decompressed data ends at byte {end})", None)
    return _Span(data, None, _SeekPoint(inflater.copy(), in_offset, end))


def _rows_meeting(offset: int, stride: int, count: int, length: int, start: int, stop: int) -> range:
    """The rows (offset + r * stride, ``length`` bytes each) with bytes in [start, stop)."""
    first = max(0, (start - length - offset) // stride + 1)
    last = min(count, -(-(stop - offset) // stride))
    return range(first, max(first, last))


def _copy_rows(rows: np.ndarray, offset: int, stride: int, data: np.ndarray, start: int) -> None:
    """Copy into ``rows`` the parts of its rows that ``data`` (decompressed bytes from ``start`` on) holds."""
    count, length = rows.shape
    stop = start + len(data)
    meeting = _rows_meeting(offset, stride, count, length, start, stop)
    if not meeting:
        return
    # Rows wholly inside: one strided copy.
    first_whole = max(meeting.start, -(-(start - offset) // stride))
    last_whole = min(meeting.stop, (stop - length - offset) // stride + 1)
    if first_whole < last_whole:
        origin = offset + first_whole * stride - start
        whole = np.lib.stride_tricks.as_strided(
            data[origin:], shape=(last_whole - first_whole, length), strides=(stride, 1), writeable=False
        )
        rows[first_whole:last_whole] = whole
    else:
        first_whole = last_whole = meeting.start
    # Rows cut by the span's ends (at most one at each end).
    for row in (*range(meeting.start, first_whole), *range(max(last_whole, first_whole), meeting.stop)):
        row_start = offset + row * stride
        low, high = max(row_start, start), min(row_start + length, stop)
        rows[row, low - row_start : high - row_start] = data[low - start : high - start]
