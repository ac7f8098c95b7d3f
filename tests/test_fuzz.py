"""Fuzzing the TIFF reader with mutated real files: a clean error or data; no crash, hang or leaked mount.

Small TIFFs of different kinds (tiled and striped, classic and BigTIFF, both byte orders, OME-XML, page
stacks, tiles passed through unchanged) are parsed here by a small IFD walker of our own, which lists every
header field, IFD entry (tag, type, count, value), next-IFD pointer, out-of-line offset/byte-count array
element and data segment. Hypothesis mutates those fields, and the in-process API must then either refuse the
file at open with a one-line ZarrfsError, or serve it: every metadata document is JSON, every chunk read gives
exactly ``stat`` bytes or fails with ChunkReadError (an OSError, EIO at the FUSE level), and level 0 equals
tifffile where tifffile reads the file too. Each example runs in a forked child with a time limit and a
memory limit, so that a hang, a segfault in a decoder or a huge allocation is reported as such (with the
mutations) instead of hanging or killing the test run.

Some files go through the real command line too (``zarrfs info`` and ``zarrfs mount``), among them an IFD
chain that loops back to itself and absurd dimensions and tile counts.
"""

from __future__ import annotations

import collections
import errno
import io
import json
import logging
import math
import os
import resource
import select
import signal
import struct
import subprocess
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st
from mounting import force_unmount, is_mounted, require_fuse, zarrfs

# Per example: the child gets this long (a normal example takes well under a second) ...
EXAMPLE_TIME_LIMIT_S = 20.0
# ... and this much data memory on top of what it inherits, so a huge allocation fails with MemoryError.
EXAMPLE_EXTRA_DATA = 768 * 2**20
# At most this many chunk files are read per array (mutated sizes can make millions): the first and last
# ones and an even spread in between.
MAX_CHUNKS_PER_ARRAY = 64
# The level-0 pixels are compared with tifffile's when both read the file and it is this small.
MAX_COMPARED_BYTES = 32 * 2**20
EXAMPLES = int(os.environ.get("ZARRFS_FUZZ_EXAMPLES", "150"))

# ----------------------------------------------------------------------------------------------------------
# Seed files


def _noise(shape: tuple[int, ...], dtype: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)


def _smooth(shape: tuple[int, ...], dtype: str) -> np.ndarray:
    return (np.arange(math.prod(shape)) % 251).astype(dtype).reshape(shape)


def _tiff_bytes(data: np.ndarray, **options: Any) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, data, **options)
    return buffer.getvalue()


def _stack_bytes(planes: np.ndarray, **options: Any) -> bytes:
    buffer = io.BytesIO()
    with tifffile.TiffWriter(buffer, byteorder=options.pop("byteorder", "<")) as writer:
        for plane in planes:
            writer.write(plane, metadata=None, **options)
    return buffer.getvalue()


@dataclass(frozen=True)
class Seed:
    name: str
    data: bytes
    options: dict[str, Any]  # serve options (zarrfs.core.options.serve_options keywords)


def _seeds() -> dict[str, Seed]:
    seeds = [
        Seed("tiled_zlib", _tiff_bytes(_noise((90, 70), "uint16", 1), tile=(32, 32), compression="zlib"), {}),
        Seed("strips_raw", _tiff_bytes(_noise((61, 47), "uint8", 2), rowsperstrip=8), {}),
        Seed(
            "stack_big_endian_lzw",
            _stack_bytes(_smooth((3, 40, 33), "uint16"), byteorder=">", rowsperstrip=9, compression="lzw"),
            # One plane per chunk (default chunks stack tiny planes): a damaged page fails only its chunk.
            {"chunks": "1,40,33"},
        ),
        Seed(
            "bigtiff_zstd",
            _tiff_bytes(_noise((2, 50, 40), "int16", 3), bigtiff=True, tile=(16, 16), compression="zstd"),
            {},
        ),
        Seed(
            "ome_zyx",
            _tiff_bytes(
                _smooth((3, 40, 50), "uint16"),
                ome=True,
                metadata={"axes": "ZYX"},
                tile=(16, 16),
                compression="zlib",
            ),
            {},
        ),
        # Uncompressed tiles served as the chunks themselves (pass-through): one pread per chunk, no decode.
        Seed(
            "passthrough_raw", _tiff_bytes(_noise((80, 96), "uint8", 4), tile=(32, 32)), {"chunks": "32,32"}
        ),
        # Deflate tiles passed through on v2 (zlib), decoded and re-encoded for v3 (gzip).
        Seed(
            "passthrough_zlib",
            _tiff_bytes(_smooth((64, 48), "uint16"), tile=(16, 16), compression="zlib"),
            {"chunks": "16,16", "compressor": "zlib"},
        ),
    ]
    return {seed.name: seed for seed in seeds}


SEEDS = _seeds()

# ----------------------------------------------------------------------------------------------------------
# A small TIFF structure walker: where every field is, so that mutations hit the structure, not just bytes.

TYPE_SIZES = {
    1: 1,
    2: 1,
    3: 2,
    4: 4,
    5: 8,
    6: 1,
    7: 1,
    8: 2,
    9: 4,
    10: 8,
    11: 4,
    12: 8,
    13: 4,
    16: 8,
    17: 8,
    18: 8,
}
OFFSET_TAGS = {273: 279, 324: 325}  # StripOffsets -> StripByteCounts, TileOffsets -> TileByteCounts
ARRAY_TAGS = {273, 279, 324, 325, 330}  # whose elements are mutated one by one
STRUCTURE_TAGS = {256, 257, 258, 259, 262, 273, 277, 278, 279, 284, 317, 322, 323, 324, 325, 330, 338, 339}


@dataclass(frozen=True)
class Field:
    offset: int
    size: int  # bytes
    kind: str  # header, ifd-count, tag, type, count, value, next-ifd, element, description, data
    tag: int = 0


@dataclass(frozen=True)
class Structure:
    byteorder: str
    bigtiff: bool
    fields: tuple[Field, ...]
    ifd_offsets: tuple[int, ...]
    entries: dict[tuple[int, int], int]  # (ifd offset, tag) -> offset of the entry

    def of_kind(self, *kinds: str) -> list[Field]:
        return [field for field in self.fields if field.kind in kinds]


def walk_tiff(data: bytes) -> Structure:
    byteorder = "<" if data[:2] == b"II" else ">"
    magic = struct.unpack_from(byteorder + "H", data, 2)[0]
    bigtiff = magic == 43
    offset_size, count_format, offset_format = (8, "Q", "Q") if bigtiff else (4, "H", "I")
    entry_size = 20 if bigtiff else 12
    count_size = 8 if bigtiff else 2
    fields = [Field(0, 2, "header"), Field(2, 2, "header")]
    if bigtiff:
        fields += [Field(4, 2, "header"), Field(6, 2, "header")]
    first = 8 if bigtiff else 4
    fields.append(Field(first, offset_size, "next-ifd"))
    pending = [struct.unpack_from(byteorder + offset_format, data, first)[0]]
    seen: list[int] = []
    entries: dict[tuple[int, int], int] = {}
    while pending:
        ifd = pending.pop(0)
        if ifd in seen or not 0 < ifd < len(data) - count_size:
            continue
        seen.append(ifd)
        count = struct.unpack_from(byteorder + count_format, data, ifd)[0]
        fields.append(Field(ifd, count_size, "ifd-count"))
        values: dict[int, tuple[int, int, int, int]] = {}  # tag -> (type, count, value offset, item size)
        for number in range(count):
            entry = ifd + count_size + number * entry_size
            tag, kind = struct.unpack_from(byteorder + "HH", data, entry)
            (item_count,) = struct.unpack_from(byteorder + offset_format, data, entry + 4)
            entries[(ifd, tag)] = entry
            value_at = entry + 4 + offset_size
            fields += [
                Field(entry, 2, "tag", tag),
                Field(entry + 2, 2, "type", tag),
                Field(entry + 4, offset_size, "count", tag),
                Field(value_at, offset_size, "value", tag),
            ]
            item_size = TYPE_SIZES.get(kind, 1)
            if item_size * item_count > offset_size:
                (value_at,) = struct.unpack_from(byteorder + offset_format, data, value_at)
            values[tag] = (kind, item_count, value_at, item_size)
        next_at = ifd + count_size + count * entry_size
        fields.append(Field(next_at, offset_size, "next-ifd"))
        pending.append(struct.unpack_from(byteorder + offset_format, data, next_at)[0])
        for tag, (_, item_count, value_at, item_size) in values.items():
            if tag in ARRAY_TAGS and item_size in (2, 4, 8):
                for index in range(min(item_count, 64)):
                    fields.append(Field(value_at + index * item_size, item_size, "element", tag))
            if tag == 270 and item_count > 8:
                fields.append(Field(value_at, min(item_count, 4096), "description", tag))
        for offsets_tag, counts_tag in OFFSET_TAGS.items():
            if offsets_tag in values and counts_tag in values:
                offsets = _array(data, byteorder, values[offsets_tag])
                counts = _array(data, byteorder, values[counts_tag])
                fields += [
                    Field(start, size, "data")
                    for start, size in zip(offsets, counts, strict=False)
                    if size and start + size <= len(data)
                ][:32]
        if 330 in values:
            pending += _array(data, byteorder, values[330])
    return Structure(byteorder, bigtiff, tuple(fields), tuple(seen), entries)


def _array(data: bytes, byteorder: str, value: tuple[int, int, int, int]) -> list[int]:
    _, count, at, item_size = value
    code = {2: "H", 4: "I", 8: "Q"}.get(item_size)
    if code is None or at + count * item_size > len(data):
        return []
    return list(struct.unpack_from(f"{byteorder}{count}{code}", data, at))


def put(data: bytearray, field: Field, value: int, byteorder: str) -> None:
    value %= 2 ** (8 * field.size)
    data[field.offset : field.offset + field.size] = value.to_bytes(
        field.size, "little" if byteorder == "<" else "big"
    )


def get(data: bytes | bytearray, field: Field, byteorder: str) -> int:
    return int.from_bytes(
        data[field.offset : field.offset + field.size], "little" if byteorder == "<" else "big"
    )


# ----------------------------------------------------------------------------------------------------------
# Mutations


@st.composite
def mutated_file(draw: st.DrawFn) -> tuple[str, bytes, list[str]]:
    """A seed and 1-3 mutations of its structure; returns the seed name, the bytes and what was done."""
    seed = SEEDS[draw(st.sampled_from(sorted(SEEDS)))]
    structure = walk_tiff(seed.data)
    data = bytearray(seed.data)
    done: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        kinds = draw(
            st.sampled_from(
                [
                    ("value",),
                    ("value", "count"),
                    ("element",),
                    ("next-ifd",),
                    ("type", "tag", "ifd-count", "header"),
                    ("data",),
                    ("description",),
                    ("truncate",),
                ]
            )
        )
        if kinds == ("truncate",):
            if len(data) < 2:
                continue
            cut = draw(st.integers(0, len(data) - 1))
            del data[cut:]
            done.append(f"truncate at {cut}")
            continue
        candidates = structure.of_kind(*kinds)
        if kinds == ("value",):  # mostly the tags that shape the image and its storage
            candidates = [field for field in candidates if field.tag in STRUCTURE_TAGS] or candidates
        candidates = [field for field in candidates if field.offset + field.size <= len(data)]
        if not candidates:
            continue
        field = draw(st.sampled_from(candidates))
        if field.kind in ("data", "description"):
            start = field.offset + draw(st.integers(0, field.size - 1))
            junk = draw(st.binary(min_size=1, max_size=min(16, field.offset + field.size - start)))
            data[start : start + len(junk)] = junk
            done.append(f"overwrite {field.kind} at {start} with {junk.hex()}")
            continue
        old = get(data, field, structure.byteorder)
        maximum = 2 ** (8 * field.size) - 1
        value = draw(
            st.one_of(
                st.sampled_from(
                    [
                        0,
                        1,
                        2,
                        3,
                        7,
                        16,
                        maximum,
                        maximum // 2,
                        maximum // 2 + 1,
                        len(data) - 1,
                        len(data),
                        len(data) + 1,
                        2**16,
                        2**31 - 1,
                        *structure.ifd_offsets,
                    ]
                ),
                st.integers(-16, 16).map(lambda delta, old=old: old + delta),
                st.integers(0, maximum),
            )
        )
        put(data, field, value, structure.byteorder)
        done.append(f"{field.kind} (tag {field.tag}) at {field.offset}: {old} -> {value % (maximum + 1)}")
    return seed.name, bytes(data), done


# ----------------------------------------------------------------------------------------------------------
# One example: open, read every document and (up to a bound) every chunk, in a forked child.

ALLOWED = {"open-error", "data", "read-error"}


def _sample(indices: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
    if len(indices) <= MAX_CHUNKS_PER_ARRAY:
        return indices
    step = len(indices) / (MAX_CHUNKS_PER_ARRAY - 1)
    return sorted({indices[min(len(indices) - 1, round(i * step))] for i in range(MAX_CHUNKS_PER_ARRAY)})


def _grid_indices(grid: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Chunk indices of a grid, sampled without enumerating a huge grid."""
    total = math.prod(grid)
    if total <= MAX_CHUNKS_PER_ARRAY:
        return list(np.ndindex(*grid))
    picks = {i * (total - 1) // (MAX_CHUNKS_PER_ARRAY - 1) for i in range(MAX_CHUNKS_PER_ARRAY)}
    indices = []
    for pick in sorted(picks):  # unravel by hand: numpy's indices overflow on absurd grids
        index = []
        for extent in reversed(grid):
            pick, position = divmod(pick, extent)
            index.append(position)
        indices.append(tuple(reversed(index)))
    return indices


_TIFF_TO_CANONICAL = {"T": "t", "C": "c", "S": "c", "Z": "z", "Y": "y", "X": "x"}


def _tifffile_reference(path: Path, series: int, axes: str, shape: tuple[int, ...]) -> np.ndarray | None:
    """tifffile's pixels in the served axis order, where the two agree on what the axes are."""
    try:
        with tifffile.TiffFile(path) as tif:
            page_series = tif.series[series]
            if np.dtype(page_series.dtype).itemsize * math.prod(page_series.shape) > MAX_COMPARED_BYTES:
                return None
            for page in tif.pages:
                if 0 in page.dataoffsets or 0 in page.databytecounts:
                    # Sparse segments: tifffile misplaces the rows after an unwritten strip of uncompressed
                    # data (it shifts the rest up), so it is no reference there.
                    return None
            pixels = page_series.asarray()
            codes = page_series.axes
    except Exception:
        return None  # tifffile cannot read it either: nothing to compare with
    kept = [(size, code) for size, code in zip(pixels.shape, codes, strict=True) if size > 1 or code in "YX"]
    letters = [_TIFF_TO_CANONICAL.get(code) for _, code in kept]
    for position, letter in enumerate(letters):  # page sequences (I, Q, ...) take z, then t
        if letter is None:
            letters[position] = next((free for free in "zt" if free not in letters), None)
    if (
        None in letters
        or len(set(letters)) != len(letters)
        or "".join(sorted(letters)) != "".join(sorted(axes))
    ):
        return None
    pixels = pixels.reshape([size for size, _ in kept])
    pixels = pixels.transpose([letters.index(letter) for letter in axes])
    return pixels if pixels.shape == shape else None


def exercise(path: Path, options: dict[str, Any], original: np.ndarray | None = None) -> dict[str, Any]:
    """What the in-process API does with ``path``: an outcome in ALLOWED, or 'bug' with a traceback. Level 0,
    when served whole, must equal ``original`` if given, else what tifffile reads from ``path``."""
    from zarrfs.core import open_dataset
    from zarrfs.core.levels import ChunkReadError
    from zarrfs.core.options import serve_options
    from zarrfs.errors import ZarrfsError

    try:
        dataset = open_dataset(path, serve_options(**options))
    except ZarrfsError as error:
        message = str(error)
        if not message or "\n" in message:
            return {"outcome": "bug", "detail": f"open error is not one line: {message!r}"}
        return {"outcome": "open-error", "detail": message}
    except BaseException:
        return {"outcome": "bug", "detail": "at open: " + traceback.format_exc()}
    result: dict[str, Any] = {"outcome": "data", "chunks": 0, "failed": 0, "compared": False}
    try:
        tree = dataset.tree
        for name in tree.listdir(""):
            if not tree.stat(name).is_dir:
                json.loads(tree.read_file(name))
        level0: dict[tuple[int, ...], bytes] = {}
        for layout in dataset.layouts:
            prefix = "" if layout.ngff == "0.4" else "c/"
            for array, files in zip(layout.arrays, layout.files, strict=True):
                level = array.level.name
                json.loads(tree.read_file(f"{level}/{'.zarray' if layout.ngff == '0.4' else 'zarr.json'}"))
                for index in _grid_indices(files.grid):
                    path_in_tree = f"{level}/{prefix}{'/'.join(map(str, index))}"
                    result["chunks"] += 1
                    try:
                        size = tree.stat(path_in_tree).size
                        data = tree.read_file(path_in_tree)
                    except ChunkReadError:
                        result["failed"] += 1
                        continue
                    if len(data) != size:
                        return {"outcome": "bug", "detail": f"{path_in_tree}: stat {size}, read {len(data)}"}
                    if level == "0" and prefix == "":
                        codec = array.encoding.metadata
                        try:
                            level0[index] = data if codec is None else numcodecs.get_codec(codec).decode(data)
                        except Exception:
                            # Pass-through serves stored tiles unchanged, a corrupt one included: the client's
                            # decoder fails on it (by design, no decode in the server). Not compared.
                            result["corrupt_passthrough"] = True
        if result["failed"]:
            result["outcome"] = "read-error"
        level = dataset.levels[0]
        if not result["failed"] and len(level0) == math.prod(level.grid):
            served = np.zeros(
                tuple(g * c for g, c in zip(level.grid, level.chunks, strict=True)), level.dtype
            )
            for index, data in level0.items():
                region = tuple(slice(i * c, (i + 1) * c) for i, c in zip(index, level.chunks, strict=True))
                served[region] = np.frombuffer(data, level.dtype).reshape(level.chunks)
            served = served[tuple(slice(0, extent) for extent in level.shape)]
            if original is not None:
                expected, reference = original, "the unmutated file"
            else:
                axes = dataset.source.info.axes
                expected = _tifffile_reference(path, options.get("series", 0), axes, level.shape)
                reference = "tifffile.imread"
            if expected is not None:
                result["compared"] = True
                if served.shape != expected.shape or not np.array_equal(
                    served, expected.astype(level.dtype), equal_nan=level.dtype.kind == "f"
                ):
                    return {"outcome": "bug", "detail": f"level 0 {served.shape} differs from {reference}"}
    except ChunkReadError:
        return {"outcome": "bug", "detail": "ChunkReadError outside a chunk read: " + traceback.format_exc()}
    except BaseException:
        return {"outcome": "bug", "detail": "while reading: " + traceback.format_exc()}
    finally:
        dataset.close()
    return result


def _data_in_use() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmData:"):
                return int(line.split()[1]) * 1024
    return 0


def run_bounded(function: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``function`` in a forked child with a time and memory limit; 'hang' or 'crash' if it fails to
    report (the child is killed after the time limit)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        status = 0
        try:
            os.close(read_end)
            logging.disable(logging.CRITICAL)  # tifffile's warnings and zarrfs's chunk errors: expected here
            limit = _data_in_use() + EXAMPLE_EXTRA_DATA
            resource.setrlimit(resource.RLIMIT_DATA, (limit, resource.getrlimit(resource.RLIMIT_DATA)[1]))
            report = function()
        except BaseException:
            report = {"outcome": "bug", "detail": traceback.format_exc()}
        try:
            with os.fdopen(write_end, "w") as pipe:
                pipe.write(json.dumps(report))
        except BaseException:
            status = 3
        os._exit(status)
    os.close(write_end)
    deadline = time.monotonic() + EXAMPLE_TIME_LIMIT_S
    chunks = []
    with os.fdopen(read_end, "rb") as pipe:
        while True:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([pipe], [], [], max(0.0, remaining))
            if not ready:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return {"outcome": "hang", "detail": f"no result within {EXAMPLE_TIME_LIMIT_S} s"}
            chunk = os.read(pipe.fileno(), 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    if not chunks:
        return {"outcome": "crash", "detail": f"child ended with wait status {status} and no report"}
    return json.loads(b"".join(chunks))


# ----------------------------------------------------------------------------------------------------------
# The fuzz test


def test_seed_files_read_back_equal(tmp_path: Path) -> None:
    """The walker and the oracle work: every unmutated seed serves exactly tifffile's pixels."""
    for seed in SEEDS.values():
        path = tmp_path / f"{seed.name}.tif"
        path.write_bytes(seed.data)
        structure = walk_tiff(seed.data)
        assert structure.ifd_offsets and structure.of_kind("data") and structure.of_kind("value"), seed.name
        report = run_bounded(lambda path=path, seed=seed: exercise(path, seed.options))
        assert report["outcome"] == "data", (seed.name, report)
        assert report["compared"] and report["chunks"] > 0 and report["failed"] == 0, (seed.name, report)


def test_truncated_anywhere_gives_a_clean_error_or_the_unchanged_image(tmp_path: Path) -> None:
    """Each seed cut at 15 points (and one byte short): refused, chunks failing with EIO, or, where the cut
    lost nothing needed, exactly the original pixels; never a shorter or zero-filled image."""
    outcomes: collections.Counter[str] = collections.Counter()
    problems = []
    for seed in SEEDS.values():
        whole = tmp_path / f"{seed.name}.tif"
        whole.write_bytes(seed.data)
        original = tifffile.imread(whole)  # every seed is stored in canonical axis order
        report = run_bounded(
            lambda whole=whole, seed=seed, original=original: exercise(whole, seed.options, original)
        )
        assert report["outcome"] == "data" and report["compared"], (seed.name, report)
        for cut in sorted({len(seed.data) * k // 16 for k in range(1, 16)} | {len(seed.data) - 1}):
            path = tmp_path / "cut.tif"
            path.write_bytes(seed.data[:cut])
            report = run_bounded(
                lambda path=path, seed=seed, original=original: exercise(path, seed.options, original)
            )
            outcomes[report["outcome"]] += 1
            if report["outcome"] not in ALLOWED:
                problems.append(f"{seed.name} cut at {cut}: {report['outcome']}: {_last_lines(report)}")
    assert not problems, "\n".join(problems)
    assert outcomes["open-error"] > 50, outcomes


def test_mutated_tiffs_give_clean_errors_or_data(tmp_path_factory: pytest.TempPathFactory) -> None:
    directory = tmp_path_factory.mktemp("fuzz")
    outcomes: collections.Counter[str] = collections.Counter()
    problems: list[str] = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=(Phase.explicit, Phase.generate),  # no shrinking: a failure prints its mutations as drawn
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(mutated_file())
    def one_example(example: tuple[str, bytes, list[str]]) -> None:
        name, data, done = example
        note(f"seed {name}: {done}")
        path = directory / "mutated.tif"
        path.write_bytes(data)
        report = run_bounded(lambda: exercise(path, SEEDS[name].options))
        outcomes[report["outcome"]] += 1
        if report["outcome"] not in ALLOWED:
            # Collected rather than raised: one run lists every distinct problem, each with its mutations
            # (reproducible from the seed) and the file kept next to the others.
            kept = directory / f"problem-{len(problems) + 1}.tif"
            kept.write_bytes(data)
            problems.append(f"{kept.name}: seed {name}, {done}: {report['outcome']}: {_last_lines(report)}")

    one_example()
    print(f"fuzz outcomes: {dict(outcomes)}")
    assert not problems, "\n".join(problems)
    # Not vacuous: the mutations reached every outcome (these counts are deterministic: derandomize=True).
    assert sum(outcomes.values()) == EXAMPLES, outcomes
    assert outcomes["open-error"] >= 10 and outcomes["data"] >= 10 and outcomes["read-error"] >= 3, outcomes


def _last_lines(report: dict[str, Any]) -> str:
    """Where a traceback ended and what it raised, in one line."""
    lines = [line.strip() for line in str(report.get("detail", report)).strip().splitlines()]
    frames = [line for line in lines if line.startswith("File ")]
    return " | ".join([*frames[-1:], lines[-1] if lines else ""])


# ----------------------------------------------------------------------------------------------------------
# Explicit cases: loops, absurd sizes and counts


def _set_entry(data: bytearray, structure: Structure, ifd: int, tag: int, value: int, kind: int = 4) -> None:
    """Set an IFD entry to one value of type ``kind`` (LONG by default), inline."""
    entry = structure.entries[(ifd, tag)]
    order = structure.byteorder
    offset_format = "Q" if structure.bigtiff else "I"
    struct.pack_into(order + "H", data, entry + 2, kind)
    struct.pack_into(order + offset_format, data, entry + 4, 1)
    value_at = entry + 4 + (8 if structure.bigtiff else 4)
    struct.pack_into(order + offset_format, data, value_at, 0)
    struct.pack_into(order + {3: "H", 4: "I", 16: "Q"}[kind], data, value_at, value)


def _next_ifd_field(structure: Structure, ifd: int) -> Field:
    return next(field for field in structure.of_kind("next-ifd") if field.offset > ifd and field.offset != 4)


def _loop_to_itself() -> bytes:
    """A single-page file whose IFD names itself as the next IFD."""
    data = bytearray(SEEDS["tiled_zlib"].data)
    structure = walk_tiff(bytes(data))
    first = structure.ifd_offsets[0]
    put(data, _next_ifd_field(structure, first), first, structure.byteorder)
    return bytes(data)


def _loop_back_to_first() -> bytes:
    """A three-page stack whose last IFD points back to the first."""
    data = bytearray(SEEDS["stack_big_endian_lzw"].data)
    structure = walk_tiff(bytes(data))
    assert len(structure.ifd_offsets) == 3
    last = structure.ifd_offsets[-1]
    put(data, _next_ifd_field(structure, last), structure.ifd_offsets[0], structure.byteorder)
    return bytes(data)


def _absurd_dimensions() -> bytes:
    data = bytearray(SEEDS["tiled_zlib"].data)
    structure = walk_tiff(bytes(data))
    first = structure.ifd_offsets[0]
    _set_entry(data, structure, first, 256, 2**32 - 1)  # ImageWidth
    _set_entry(data, structure, first, 257, 2**32 - 1)  # ImageLength
    return bytes(data)


def _absurd_tile_size() -> bytes:
    data = bytearray(SEEDS["tiled_zlib"].data)
    structure = walk_tiff(bytes(data))
    first = structure.ifd_offsets[0]
    _set_entry(data, structure, first, 322, 2**31)  # TileWidth (a multiple of 16)
    _set_entry(data, structure, first, 323, 2**31)  # TileLength
    return bytes(data)


def _absurd_tile_count() -> bytes:
    """Width and height of 2**20 with the original 32x32 tiles: a billion tiles, with offsets for only 9."""
    data = bytearray(SEEDS["tiled_zlib"].data)
    structure = walk_tiff(bytes(data))
    first = structure.ifd_offsets[0]
    _set_entry(data, structure, first, 256, 2**20)
    _set_entry(data, structure, first, 257, 2**20)
    return bytes(data)


def _absurd_offset_count() -> bytes:
    """TileOffsets and TileByteCounts claiming 2**30 entries (the arrays would lie far past the end)."""
    data = bytearray(SEEDS["tiled_zlib"].data)
    structure = walk_tiff(bytes(data))
    first = structure.ifd_offsets[0]
    for tag in (324, 325):
        entry = structure.entries[(first, tag)]
        struct.pack_into(structure.byteorder + "I", data, entry + 4, 2**30)
    return bytes(data)


def _zero_width() -> bytes:
    data = bytearray(SEEDS["strips_raw"].data)
    structure = walk_tiff(bytes(data))
    _set_entry(data, structure, structure.ifd_offsets[0], 256, 0)
    return bytes(data)


def _absurd_ome_planes() -> bytes:
    """OME-XML announcing a billion z planes where the file holds three."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "planes.ome.tif"
        path.write_bytes(SEEDS["ome_zyx"].data)
        xml = tifffile.tiffcomment(path)
        assert 'SizeZ="3"' in xml
        tifffile.tiffcomment(path, comment=xml.replace('SizeZ="3"', 'SizeZ="1000000000"').encode())
        return path.read_bytes()


def _absurd_rows_per_strip() -> bytes:
    data = bytearray(SEEDS["strips_raw"].data)
    structure = walk_tiff(bytes(data))
    _set_entry(data, structure, structure.ifd_offsets[0], 278, 2**32 - 1)  # RowsPerStrip
    return bytes(data)


def _float_image_length() -> bytes:
    """ImageLength typed DOUBLE (tifffile reads a tiny float from where the value points), in a file whose
    tifffile shape metadata no longer parses, so that the page's float shape is the series shape."""
    data = bytearray(SEEDS["passthrough_zlib"].data)
    structure = walk_tiff(bytes(data))
    entry = structure.entries[(structure.ifd_offsets[0], 257)]
    struct.pack_into(structure.byteorder + "H", data, entry + 2, 12)
    assert data.count(b'{"shape"') == 1
    return bytes(data).replace(b'{"shape"', b'{"shapp"')


def _offsets_of_byte_type() -> bytes:
    """TileOffsets typed BYTE: tifffile hands over a bytes object instead of numbers."""
    data = bytearray(SEEDS["tiled_zlib"].data)
    structure = walk_tiff(bytes(data))
    entry = structure.entries[(structure.ifd_offsets[0], 324)]
    struct.pack_into(structure.byteorder + "H", data, entry + 2, 1)
    return bytes(data)


def _with_field(seed: str, kind: str, tag: int, value: int | Callable[[int], int], nth: int = 0) -> bytes:
    """The seed file with the ``nth`` field of ``kind`` of tag ``tag`` set to ``value`` (or to
    ``value(file size)``)."""
    data = bytearray(SEEDS[seed].data)
    structure = walk_tiff(bytes(data))
    field = [field for field in structure.of_kind(kind) if field.tag == tag][nth]
    put(data, field, value(len(data)) if callable(value) else value, structure.byteorder)
    return bytes(data)


def _offset_beyond_int64() -> bytes:
    """A BigTIFF tile offset of 2**63, beyond any int64."""
    return _with_field("bigtiff_zstd", "element", 324, 2**63)


def _resolution_unit_pair() -> bytes:
    """ResolutionUnit with a count of 2: tifffile hands over a tuple."""
    return _with_field("passthrough_zlib", "count", 296, 2)


def _unsupported_compression() -> bytes:
    """Compression relabelled as JBIG (34661), a codec tifffile cannot decode."""
    return _with_field("strips_raw", "value", 259, 34661)


@dataclass(frozen=True)
class BadFile:
    make: Callable[[], bytes]
    seed: str  # the seed it is made from: opened with that seed's options
    outcome: str  # the one outcome in ALLOWED this file must have
    message: tuple[str, ...] = ()  # for "open-error": parts of the one error line
    every_chunk_fails: bool = False  # for "read-error": no chunk can be made (else the others are served)


def refused(*message: str) -> tuple[str, tuple[str, ...]]:
    return "open-error", message


SERVED_EXACTLY = ("data", ())  # every chunk served, level 0 equal to tifffile's
SOME_CHUNKS_FAIL = ("read-error", ())  # the chunks of the damaged data fail (EIO), the others are served

EXPLICIT: dict[str, BadFile] = {
    "ifd_loop_to_itself": BadFile(
        _loop_to_itself, "tiled_zlib", *refused("IFD chain loops back: IFD 0 points to IFD 0")
    ),
    "ifd_loop_back_to_first": BadFile(
        _loop_back_to_first, "stack_big_endian_lzw", *refused("IFD chain loops back: IFD 2 points to IFD 0")
    ),
    "absurd_dimensions": BadFile(
        _absurd_dimensions, "tiled_zlib", *refused("image of 4294967295x4294967295 pixels is too large")
    ),
    "absurd_tile_size": BadFile(
        _absurd_tile_size,
        "tiled_zlib",
        *refused("invalid TileWidth 2147483648: tiles are at most 65536 pixels"),
    ),
    "absurd_tile_count": BadFile(
        _absurd_tile_count,
        "tiled_zlib",
        *refused("invalid tile offsets in page 0: 9 stored, but", "needs 1073741824"),
    ),
    "absurd_offset_count": BadFile(
        _absurd_offset_count,
        "tiled_zlib",
        *refused("invalid tile offsets in page 0: 0 stored, but", "needs 9"),
    ),
    "zero_width": BadFile(_zero_width, "strips_raw", *refused("invalid ImageWidth 0: at least 1 is needed")),
    # RowsPerStrip beyond the image: one strip, as TIFF defines it.
    "absurd_rows_per_strip": BadFile(_absurd_rows_per_strip, "strips_raw", *SERVED_EXACTLY),
    "ome_more_planes_than_stored": BadFile(
        _absurd_ome_planes,
        "ome_zyx",
        *refused("OME metadata announces 1000000000 planes but the file holds 3"),
    ),
    "unsupported_compression": BadFile(
        _unsupported_compression,
        "strips_raw",
        *refused("cannot decode JBIG compression: tifffile does not support it"),
    ),
    # Found by the fuzz test: fields of an unexpected type or size. A float ImageLength with --chunks 16,16
    # made the computed pyramid endless (memory grows until the process dies).
    "float_image_length": BadFile(
        _float_image_length, "passthrough_zlib", *refused("invalid ImageLength", ": not a whole number")
    ),
    "offsets_of_byte_type": BadFile(
        _offsets_of_byte_type, "tiled_zlib", *refused("invalid tile offsets in page 0: not integers")
    ),
    "offset_beyond_int64": BadFile(
        _offset_beyond_int64,
        "bigtiff_zstd",
        *refused("invalid tile offsets in page 0: byte 9223372036854775808 lies beyond the end of the file"),
    ),
    # ResolutionUnit is metadata only: the pixels are served.
    "resolution_unit_pair": BadFile(_resolution_unit_pair, "passthrough_zlib", *SERVED_EXACTLY),
}


def assert_outcome(report: dict[str, Any], bad: BadFile) -> None:
    """``report`` (of ``exercise``) is the outcome ``bad`` must have, with its message or data."""
    assert report["outcome"] == bad.outcome, f"{report['outcome']}: {_last_lines(report)}"
    if bad.outcome == "open-error":
        assert all(part in report["detail"] for part in bad.message), (bad.message, report["detail"])
    elif bad.outcome == "data":
        assert report["compared"] and report["failed"] == 0, report
    elif bad.every_chunk_fails:
        assert report["failed"] == report["chunks"] > 0, report
    else:
        assert 0 < report["failed"] < report["chunks"], report


@pytest.mark.parametrize("name", sorted(EXPLICIT))
def test_explicit_bad_structures_in_process(name: str, tmp_path: Path) -> None:
    bad = EXPLICIT[name]
    path = tmp_path / f"{name}.tif"
    path.write_bytes(bad.make())
    assert_outcome(run_bounded(lambda: exercise(path, SEEDS[bad.seed].options)), bad)


def test_an_ifd_loop_is_refused_and_the_file_without_it_served_whole(tmp_path: Path) -> None:
    """A next-IFD pointer back to an IFD already read is refused by name (never a silently shorter stack), and
    the loop alone is the cause: the same file with the pointer back to 0 serves every page exactly."""
    for name in ("ifd_loop_to_itself", "ifd_loop_back_to_first"):
        bad = EXPLICIT[name]
        path = tmp_path / f"{name}.tif"
        path.write_bytes(bad.make())
        assert_outcome(run_bounded(lambda path=path: exercise(path, {})), bad)
        unlooped = tmp_path / f"{name}-unlooped.tif"
        unlooped.write_bytes(SEEDS[bad.seed].data)
        assert [a != b for a, b in zip(path.read_bytes(), unlooped.read_bytes(), strict=True)].count(
            True
        ) <= 8
        served = run_bounded(lambda unlooped=unlooped: exercise(unlooped, {}))
        assert served["outcome"] == "data" and served["compared"] and served["failed"] == 0, served
        with tifffile.TiffFile(unlooped) as tif:
            assert len(tif.pages) == (3 if name == "ifd_loop_back_to_first" else 1)


# ----------------------------------------------------------------------------------------------------------
# Through the command line

# A file that makes zarrfs allocate without bound must not take the machine down. (The data limit counts
# memory written to, thread stacks included, but not the address space malloc reserves per thread.)
CLI_DATA_LIMIT = 1 * 2**30


def _limit_data() -> None:
    resource.setrlimit(resource.RLIMIT_DATA, (CLI_DATA_LIMIT, resource.getrlimit(resource.RLIMIT_DATA)[1]))


def zarrfs_bounded(*args: str | os.PathLike[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``mounting.zarrfs`` with a memory limit (inherited by the mount daemon)."""
    return zarrfs(*args, timeout=timeout, preexec_fn=_limit_data)


def _assert_clean_cli_failure(result: subprocess.CompletedProcess[str]) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0
    assert len(lines) == 1 and lines[0].startswith("zarrfs: error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def _flags(options: dict[str, Any]) -> list[str]:
    return [part for key, value in options.items() for part in (f"--{key.replace('_', '-')}", str(value))]


def _cli_files() -> dict[str, BadFile]:
    files = dict(EXPLICIT)

    def tile_offset_past_end() -> bytes:
        return _with_field("tiled_zlib", "element", 324, lambda size: size + 4096, nth=1)

    def passthrough_tile_past_end() -> bytes:
        return _with_field("passthrough_raw", "element", 324, lambda size: size - 10, nth=2)

    def compression_of_unknown_type() -> bytes:
        return _with_field("bigtiff_zstd", "type", 259, 99)

    def zeroed_lzw_strip() -> bytes:
        data = bytearray(SEEDS["stack_big_endian_lzw"].data)
        segment = walk_tiff(bytes(data)).of_kind("data")[1]
        data[segment.offset : segment.offset + segment.size] = b"\x00" * segment.size
        return bytes(data)

    files["tile_offset_past_end"] = BadFile(
        tile_offset_past_end, "tiled_zlib", *refused("file is truncated: its image data ends at byte")
    )
    files["passthrough_tile_past_end"] = BadFile(
        passthrough_tile_past_end,
        "passthrough_raw",
        *refused("file is truncated: its image data ends at byte"),
    )
    # tifffile drops a Compression field of an unknown type: the zstd tiles, taken as raw, fail to read.
    files["compression_of_unknown_type"] = BadFile(
        compression_of_unknown_type, "bigtiff_zstd", "read-error", every_chunk_fails=True
    )
    files["zeroed_lzw_strip"] = BadFile(zeroed_lzw_strip, "stack_big_endian_lzw", *SOME_CHUNKS_FAIL)
    return files


CLI_FILES = _cli_files()


@pytest.mark.parametrize("name", sorted(CLI_FILES))
def test_bad_structures_through_the_command_line(name: str, tmp_path: Path) -> None:
    """``zarrfs info`` and ``zarrfs mount`` show each file's outcome: a refused file gives exit 1 and its one
    error line; a served one mounts, serves its metadata and every level-0 chunk (v2) exactly as big as its
    size, the damaged ones (only those) EIO, and unmounts; nothing is left mounted."""
    require_fuse()
    bad = CLI_FILES[name]
    source = tmp_path / f"{name}.tif"
    source.write_bytes(bad.make())
    options = _flags(SEEDS[bad.seed].options)
    info = zarrfs_bounded("info", source, *options)
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    try:
        mounted = zarrfs_bounded("mount", source, mountpoint, "--log-file", tmp_path / "zarrfs.log", *options)
        if bad.outcome == "open-error":
            for result in (info, mounted):
                _assert_clean_cli_failure(result)
                assert all(part in result.stderr for part in bad.message), (bad.message, result.stderr)
            assert not is_mounted(mountpoint)
            return
        assert info.returncode == 0 and "axes:" in info.stdout and not info.stderr, info
        assert mounted.returncode == 0, mounted.stderr
        assert is_mounted(mountpoint)
        assert json.loads((mountpoint / ".zgroup").read_text()) == {"zarr_format": 2}
        zarray = json.loads((mountpoint / "0" / ".zarray").read_text())
        grid = [-(-extent // chunk) for extent, chunk in zip(zarray["shape"], zarray["chunks"], strict=True)]
        failed = 0
        for index in np.ndindex(*grid):
            chunk = mountpoint.joinpath("0", *map(str, index))
            try:
                data = chunk.read_bytes()
            except OSError as error:
                assert error.errno == errno.EIO, (
                    error
                )  # a chunk that cannot be made: EIO, never another error
                failed += 1
            else:
                assert len(data) == chunk.stat().st_size
        if bad.outcome == "data":
            assert failed == 0
        else:
            assert 0 < failed <= math.prod(grid) and (failed == math.prod(grid)) == bad.every_chunk_fails
        unmounted = zarrfs("unmount", mountpoint, timeout=60)
        assert unmounted.returncode == 0, unmounted.stderr
    finally:
        force_unmount(mountpoint)
    assert not is_mounted(mountpoint)
