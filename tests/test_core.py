"""The FUSE-free core: cache, chunk translation, padding, encoding and the virtual tree."""

from __future__ import annotations

import json
import threading
import time

import numcodecs
import numpy as np
import pytest
from array_source import ArraySource

from zarrfs.core import ServeOptions, build_dataset
from zarrfs.core.chunking import default_chunks
from zarrfs.core.levels import ChunkReadError
from zarrfs.core.options import parse_chunks, parse_size, serve_options
from zarrfs.core.tree import VirtualTree, WouldBlock
from zarrfs.errors import ZarrfsError
from zarrfs.lru import ByteLRUCache
from zarrfs.sources import Channel, Level, PhysicalSize


def test_cache_evicts_least_recently_used_within_byte_bound() -> None:
    cache = ByteLRUCache(capacity_bytes=250, entry_overhead=0)
    for key in "abc":
        cache.get_or_compute(key, lambda: b"x" * 100)
    stats = cache.stats()
    assert (stats.entries, stats.size_bytes, stats.evictions, stats.misses) == (2, 200, 1, 3)
    computed = []
    cache.get_or_compute("a", lambda: computed.append("a") or b"y" * 100)
    assert computed == ["a"]  # "a" was the least recently used and was evicted
    assert cache.get_or_compute("c", lambda: b"never") == b"x" * 100
    assert cache.stats().hits == 1


def test_cache_does_not_keep_values_larger_than_capacity() -> None:
    cache = ByteLRUCache(capacity_bytes=10, entry_overhead=0)
    assert cache.get_or_compute("big", lambda: b"z" * 11) == b"z" * 11
    assert cache.stats().size_bytes == 0


def test_cache_can_keep_one_oversized_value_alone() -> None:
    cache: ByteLRUCache[np.ndarray] = ByteLRUCache(
        100, sizeof=lambda a: a.nbytes, keep_oversized=True, entry_overhead=0
    )
    cache.get_or_compute("small", lambda: np.zeros(50, np.uint8))
    cache.get_or_compute("huge", lambda: np.zeros(500, np.uint8))
    stats = cache.stats()
    assert (stats.entries, stats.size_bytes) == (1, 500)
    assert cache.get_or_compute("huge", lambda: np.ones(1, np.uint8)).nbytes == 500


def test_cache_computes_a_key_once_for_concurrent_requests() -> None:
    cache = ByteLRUCache(capacity_bytes=1000)
    calls = []

    def slow() -> bytes:
        calls.append(1)
        time.sleep(0.2)
        return b"v"

    results = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get_or_compute("k", slow))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert results == [b"v"] * 8


def test_cache_does_not_keep_failures() -> None:
    cache = ByteLRUCache(capacity_bytes=1000)
    with pytest.raises(ValueError):
        cache.get_or_compute("k", lambda: (_ for _ in ()).throw(ValueError("boom")))
    assert cache.get_or_compute("k", lambda: b"ok") == b"ok"


def test_cache_peek_neither_computes_nor_waits() -> None:
    cache = ByteLRUCache(capacity_bytes=1000, entry_overhead=0)
    assert cache.peek("k") is None
    started, release = threading.Event(), threading.Event()

    def slow() -> bytes:
        started.set()
        release.wait(10)
        return b"v"

    worker = threading.Thread(target=lambda: cache.get_or_compute("k", slow))
    worker.start()
    started.wait(10)
    assert cache.peek("k") is None  # under way: peek does not wait for it
    release.set()
    worker.join()
    assert cache.peek("k") == b"v"
    stats = cache.stats()
    assert (stats.misses, stats.hits) == (1, 1)


def test_parse_size_and_chunks() -> None:
    assert parse_size("512MiB") == 512 * 2**20
    assert parse_size("2G") == 2 * 10**9
    assert parse_size("1024") == 1024
    with pytest.raises(ZarrfsError, match="invalid size"):
        parse_size("lots")
    assert parse_chunks("1,256,256") == (1, 256, 256)
    with pytest.raises(ZarrfsError, match="positive"):
        parse_chunks("0,5")
    with pytest.raises(ZarrfsError, match="comma-separated"):
        parse_chunks("a,b")


def test_default_chunks_are_whole_multiples_of_tiles() -> None:
    assert default_chunks("zyx", Level((10, 2000, 3000), (1, 256, 256)), 2) == (1, 512, 512)
    assert default_chunks("yx", Level((5000, 5000), (1024, 1024)), 2) == (1024, 1024)
    # Two 480-pixel chunks cover 900 pixels as the 240-pixel tiles do (960); 720 would serve 1440.
    assert default_chunks("cyx", Level((3, 900, 900), (3, 240, 240)), 1) == (3, 480, 480)
    # Little padding: 512x512 chunks of a 600x515 image would serve 3.4 times its pixels.
    assert default_chunks("yx", Level((600, 515), (128, 128)), 2) == (600, 515)
    assert default_chunks("zyx", Level((20, 33, 29), (1, 4, 29)), 2) == (7, 33, 29)  # 21 planes, not 32
    # Full-width strips stay full width; bands grow to a few MiB.
    chunks = default_chunks("yx", Level((20000, 8000), (16, 8000)), 2)
    assert chunks[1] == 8000 and chunks[0] % 16 == 0 and chunks[0] * 8000 * 2 <= 4 * 2**20
    # One huge strip cannot be a chunk: alignment is given up.
    assert default_chunks("yx", Level((30000, 30000), (30000, 30000)), 2) == (512, 512)
    # Small images are one chunk.
    assert default_chunks("yx", Level((100, 80), (16, 80)), 1) == (100, 80)


def _dataset(data: np.ndarray, axes: str, **options: object):
    """A v2-only, single-level dataset: what these tests look at."""
    source = ArraySource(data, axes, storage_unit=(1,) * (data.ndim - 2) + (64, 64))
    options = {"ngff": "0.4", "levels": 1, **options}
    return source, build_dataset(source, serve_options(**options))


def _decode(dataset, key: str, dtype: np.dtype, chunks: tuple[int, ...]) -> np.ndarray:
    data = dataset.tree.read_file(key)
    config = json.loads(dataset.tree.read_file("0/.zarray"))["compressor"]
    if config is not None:
        data = numcodecs.get_codec(config).decode(data)
    return np.frombuffer(bytes(data), dtype=dtype).reshape(chunks)


@pytest.mark.parametrize("compressor", ["none", "blosc-lz4", "blosc-zstd", "zstd", "zlib"])
def test_chunks_translate_pad_and_encode(compressor: str) -> None:
    data = np.random.default_rng(1).integers(0, 60000, (3, 150, 200), dtype=np.uint16)
    _, dataset = _dataset(data, "zyx", chunks="2,128,128", compressor=compressor)
    zarray = json.loads(dataset.tree.read_file("0/.zarray"))
    assert zarray["chunks"] == [2, 128, 128] and zarray["shape"] == [3, 150, 200]
    assert zarray["dimension_separator"] == "/" and zarray["dtype"] == "<u2"
    # Edge chunk along every axis: full size, padded with the fill value.
    chunk = _decode(dataset, "0/1/1/1", np.dtype("<u2"), (2, 128, 128))
    np.testing.assert_array_equal(chunk[:1, :22, :72], data[2:, 128:, 128:])
    assert not chunk[1:].any() and not chunk[:, 22:].any() and not chunk[:, :, 72:].any()
    for key in ["0/0/0/0", "0/1/1/1", "0/0/1/0"]:
        assert dataset.tree.stat(key).size == len(dataset.tree.read_file(key))


def test_tree_paths_listing_and_missing_keys() -> None:
    data = np.zeros((2, 300, 130), dtype=np.float32)
    _, dataset = _dataset(data, "cyx", chunks="1,128,128")
    tree = dataset.tree
    assert sorted(tree.listdir("")) == [".zattrs", ".zgroup", ".zmetadata", "0"]
    assert list(tree.listdir("0")) == [".zarray", "0", "1"]
    assert list(tree.listdir("0/1")) == ["0", "1", "2"]
    assert list(tree.listdir("0/1/2")) == ["0", "1"]
    assert list(tree.listdir("0", start=1)) == ["0", "1"]
    assert list(tree.listdir("0", start=2)) == ["1"]
    assert list(tree.listdir("0/1", start=2)) == ["2"]
    assert list(tree.listdir("", start=1)) == [".zgroup", ".zmetadata", "0"]
    assert tree.stat("0/1/2").is_dir and tree.stat("/0/1/2/1").size == 128 * 128 * 4
    for missing in [
        "0/2",
        "0/0/3",
        "0/0/0/2",
        "0/0/0/0/0",
        "0/00/0/0",
        "0/-1/0/0",
        ".zarray",
        "1",
        "0/.zattrs",
    ]:
        assert tree.stat(missing) is None, missing
    with pytest.raises(FileNotFoundError):
        tree.read_file("0/9/9/9")
    with pytest.raises(IsADirectoryError):
        tree.read_file("0/0")
    with pytest.raises(NotADirectoryError):
        list(tree.listdir("0/0/0/0"))


def test_big_endian_and_float_sources_are_served_little_endian() -> None:
    data = np.arange(64 * 64, dtype=">f8").reshape(64, 64)
    _, dataset = _dataset(data, "yx")
    zarray = json.loads(dataset.tree.read_file("0/.zarray"))
    assert zarray["dtype"] == "<f8" and zarray["fill_value"] == 0.0
    chunk = np.frombuffer(dataset.tree.read_file("0/0/0"), dtype="<f8").reshape(64, 64)
    np.testing.assert_array_equal(chunk, data)


def test_ngff_attributes_from_source_metadata() -> None:
    data = np.zeros((2, 4, 64, 64), dtype=np.uint16)
    source = ArraySource(
        data,
        "czyx",
        physical_sizes={"z": PhysicalSize(2.0, "micrometer"), "x": PhysicalSize(0.5, "micrometer"),
                        "y": PhysicalSize(0.5, "micrometer")},
        channels=[Channel("DAPI", "0000FF"), Channel(None, None)],
    )  # fmt: skip
    dataset = build_dataset(source, ServeOptions(levels=1))
    attrs = json.loads(dataset.tree.read_file(".zattrs"))
    multiscales = attrs["multiscales"][0]
    assert multiscales["version"] == "0.4"
    assert multiscales["axes"] == [
        {"name": "c", "type": "channel"},
        {"name": "z", "type": "space", "unit": "micrometer"},
        {"name": "y", "type": "space", "unit": "micrometer"},
        {"name": "x", "type": "space", "unit": "micrometer"},
    ]
    assert multiscales["datasets"] == [
        {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0, 2.0, 0.5, 0.5]}]}
    ]
    channels = attrs["omero"]["channels"]
    assert [c["label"] for c in channels] == ["DAPI", "Channel 1"]
    assert [c["color"] for c in channels] == ["0000FF", "FF00FF"]
    # From the data: all zeros, a window one unit wide within the data type's range.
    assert channels[0]["window"] == {"min": 0.0, "max": 65535.0, "start": 0.0, "end": 1.0}


def test_failing_source_region_fails_one_chunk_only() -> None:
    data = np.ones((128, 128), dtype=np.uint8)
    source = ArraySource(data, "yx", storage_unit=(64, 64), failing_regions={(64, 0)})
    dataset = build_dataset(source, serve_options(chunks="64,64", levels=1))
    with pytest.raises(ChunkReadError, match="corrupt tile"):
        dataset.tree.read_file("0/1/0")
    assert dataset.tree.read_file("0/0/0") == b"\x01" * 64 * 64
    with pytest.raises(OSError):  # still failing: errors are not cached
        dataset.tree.read_file("0/1/0")


def test_chunk_option_errors() -> None:
    data = np.zeros((64, 64), dtype=np.uint8)
    with pytest.raises(ZarrfsError, match="3 values but the image has 2 axes"):
        _dataset(data, "yx", chunks="1,2,3")
    with pytest.raises(ZarrfsError, match="unknown compressor"):
        _dataset(data, "yx", compressor="lzma")
    with pytest.raises(ZarrfsError, match="out of range"):
        _dataset(data, "yx", compressor="zlib", clevel=12)


def test_raw_chunk_files_are_read_only_views_of_the_cached_chunk() -> None:
    data = np.arange(128 * 128, dtype=np.uint16).reshape(128, 128)
    _, dataset = _dataset(data, "yx", chunks="64,64", compressor="none")
    whole = dataset.tree.read_file("0/1/0")
    part = dataset.tree.read("0/1/0", 100, 50)
    assert isinstance(whole, memoryview) and whole.readonly
    assert whole == data[64:, :64].tobytes() and part == whole[100:150]
    with pytest.raises(TypeError):
        whole[0] = 1  # type: ignore[index]
    # No copy: both are views of the one cached chunk.
    assert np.shares_memory(np.frombuffer(whole, np.uint8), np.frombuffer(part, np.uint8))


@pytest.mark.parametrize("shards", [None, 2])
@pytest.mark.parametrize("compressor", ["none", "zstd"])
def test_non_blocking_calls_answer_only_what_needs_no_chunk_made(compressor: str, shards: int | None) -> None:
    data = np.random.default_rng(2).integers(0, 60000, (128, 256), dtype=np.uint16)
    ngff = "0.4" if shards is None else "0.5"
    _, dataset = _dataset(data, "yx", chunks="64,64", compressor=compressor, ngff=ngff, shards=shards)
    tree = dataset.tree
    key = "0/1/1" if shards is None else "0/c/0/1"
    document = "0/.zarray" if shards is None else "0/zarr.json"
    assert tree.read(document, 0, 5, blocking=False) == tree.read_file(document)[:5]
    assert tree.stat("0", blocking=False).is_dir
    if compressor == "none":
        assert tree.stat(key, blocking=False) == tree.stat(key)  # raw sizes need no chunk
    else:
        with pytest.raises(WouldBlock):
            tree.stat(key, blocking=False)  # the size of a compressed chunk needs an encode
    with pytest.raises(WouldBlock):
        tree.read(key, 0, 10, blocking=False)
    with pytest.raises(WouldBlock):
        tree.read_file(key, blocking=False)
    expected = bytes(tree.read_file(key))
    assert tree.stat(key, blocking=False).size == len(expected)
    assert tree.read_file(key, blocking=False) == expected
    assert tree.read(key, 3, 1000, blocking=False) == expected[3:1003]


def test_non_blocking_lookups_check_the_source_once() -> None:
    data = np.zeros((128, 128), dtype=np.uint8)
    _, dataset = _dataset(data, "yx", chunks="64,64", compressor="zstd")
    checks = []
    tree = VirtualTree(
        {"zarr.json": b"{}"}, {"0": {"": dataset.layouts[0].files[0]}}, guard=lambda: checks.append(1)
    )
    with pytest.raises(WouldBlock):
        tree.stat("0/0/0", blocking=False)
    with pytest.raises(WouldBlock):
        tree.read_file("0/0/0", blocking=False)
    assert checks == []  # nothing served yet: the blocking call that follows checks
    tree.read_file("0/0/0")
    tree.stat("0/0/0", blocking=False)
    tree.read_file("0/0/0", blocking=False)
    assert len(checks) == 3

    def refuse() -> None:
        raise OSError("changed")

    refusing = VirtualTree({}, {"0": {"": dataset.layouts[0].files[0]}}, guard=refuse)
    for call in (refusing.stat, refusing.read_file):
        with pytest.raises(OSError, match="changed"):
            call("0/0/0", blocking=False)  # cached, yet refused


def test_a_hanging_source_check_sends_later_lookups_where_a_time_limit_applies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import zarrfs.core.tree as tree_module

    stuck_after = 0.05
    monkeypatch.setattr(tree_module, "STUCK_CHECK_S", stuck_after)
    data = np.zeros((128, 128), dtype=np.uint8)
    _, dataset = _dataset(data, "yx", chunks="64,64")
    entered, answering = threading.Event(), threading.Event()

    def hanging_check() -> None:
        entered.set()
        answering.wait(30)  # released below; the bound only keeps a broken test from hanging

    tree = VirtualTree({}, {"0": {"": dataset.layouts[0].files[0]}}, guard=hanging_check)
    stuck = threading.Thread(target=tree.stat, args=("0/0/0",), kwargs={"blocking": False})
    stuck.start()  # its check waits like a stat on a network filesystem that stopped answering
    assert entered.wait(30)
    # The check started before it entered the guard: once STUCK_CHECK_S have passed since then, it has hung
    # that long, whatever the scheduling (no race between two sleeps).
    hung_since = time.monotonic()
    while time.monotonic() - hung_since <= 2 * stuck_after:
        time.sleep(stuck_after)
    assert stuck.is_alive()
    with pytest.raises(WouldBlock):
        tree.stat("0/1/1", blocking=False)
    with pytest.raises(WouldBlock):
        tree.read_file("0/1/1", blocking=False)
    answering.set()
    stuck.join(timeout=30)
    assert not stuck.is_alive()
    assert tree.stat("0/1/1", blocking=False).size == 64 * 64  # checks run inline again
