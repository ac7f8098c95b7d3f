"""The request policy every front end shares (zarrfs.core.requests): the in-process store's time limit,
given-up requests whose work stops, cancelled computations made again for whoever still wants them, and failed
requests that leave no reference cycle (their buffers are freed at once, not by the cyclic collector)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import math
import threading
import time
import types
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from array_source import ArraySource
from mounting import mounted
from test_mount import _daemon_pid

import zarrfs
from zarrfs import cancellation
from zarrfs.cancellation import Cancelled, CancelToken
from zarrfs.core import Dataset, build_dataset
from zarrfs.core.levels import ChunkReadError, FanOut
from zarrfs.core.options import serve_options
from zarrfs.core.requests import DEFAULT_TIMEOUT_S, RequestPolicy, RequestTimeout
from zarrfs.frontends.mount import MountSpec
from zarrfs.lru import ByteLRUCache

# Batches of these tests run on one runner, as a dataset's levels share theirs.
FANOUT = FanOut()


def one_slow_strip(path: Path, side: int = 6000) -> np.ndarray:
    """One huge LZW strip: making any chunk decodes all of it (~0.4 s here for 6000x6000)."""
    image = np.random.default_rng(0).integers(0, 4000, (side, side), dtype=np.uint16)
    tifffile.imwrite(path, image, compression="lzw", rowsperstrip=side)
    return image


def test_the_store_answers_a_timeout_error_after_its_time_limit_and_keeps_serving(tmp_path: Path) -> None:
    source = tmp_path / "one_strip.tif"
    image = one_slow_strip(source)
    store = zarrfs.open_store(source, timeout=0.05, levels=1, ngff="0.4")
    try:
        group = zarr.open_group(store, mode="r")
        with pytest.raises(RequestTimeout, match=r"took longer than 0\.05 s") as raised:
            group["0"][:10, :10]
        assert isinstance(raised.value, TimeoutError)
        assert dict(group.attrs)["multiscales"]  # documents are still answered
    finally:
        store.close()
    # With the default, the mount's, the chunk is read.
    assert MountSpec("s", "m").request_timeout == DEFAULT_TIMEOUT_S == 60
    store = zarrfs.open_store(source, levels=1, ngff="0.4")
    try:
        np.testing.assert_array_equal(zarr.open_group(store, mode="r")["0"][:10, :10], image[:10, :10])
    finally:
        store.close()


@pytest.mark.parametrize("timeout", [0, -1, math.nan, math.inf])
def test_the_store_refuses_a_time_limit_that_is_not_positive_and_finite(
    tmp_path: Path, timeout: float
) -> None:
    source = tmp_path / "small.tif"
    tifffile.imwrite(source, np.zeros((64, 64), np.uint8))
    with pytest.raises(ValueError, match="positive, finite number of seconds"):
        zarrfs.open_store(source, timeout=timeout)


class SlowSource(ArraySource):
    """Each region takes 10 ms to read (as a decode does, without the GIL); counts the reads."""

    def read_region(self, level: int, region: tuple[slice, ...]) -> np.ndarray:
        time.sleep(0.01)
        return super().read_region(level, region)


def slow_dataset() -> tuple[SlowSource, Dataset]:
    data = np.arange(1024 * 1024, dtype=np.uint32).reshape(1024, 1024).astype(np.uint16)
    source = SlowSource(data, "yx", storage_unit=(32, 32))
    return source, build_dataset(source, serve_options(chunks="32,32", ngff="0.4"))


def test_a_request_given_up_at_its_time_limit_stops_its_work() -> None:
    source, dataset = slow_dataset()
    coarsest = dataset.levels[-1]
    assert coarsest.grid == (1, 1)  # 1024 level-0 chunks of 10 ms each: 5 s on two workers
    policy = RequestPolicy(dataset.tree, timeout=0.3)
    try:
        started = time.monotonic()
        with pytest.raises(RequestTimeout):
            policy.answer(dataset.tree.read, f"{coarsest.name}/0/0", 0, 100)
        assert time.monotonic() - started < 2
        time.sleep(0.2)  # pieces already running finish
        reads = source.reads
        time.sleep(0.5)
        assert source.reads == reads  # nothing more is read for a request nobody waits for
        assert 0 < reads < 1024
    finally:
        policy.close()


def test_a_computation_cancelled_for_one_request_is_made_again_for_another_that_waited() -> None:
    cache: ByteLRUCache[bytes] = ByteLRUCache(1 << 20)
    token = CancelToken()
    computing = threading.Event()
    calls: list[str] = []

    def compute() -> bytes:
        calls.append(threading.current_thread().name)
        computing.set()
        while True:  # a long computation that checks, between pieces, whether it is still wanted
            cancellation.check()
            if threading.current_thread().name == "waiter":
                return b"value"
            time.sleep(0.01)

    def owner() -> None:
        with cancellation.working_for(token), pytest.raises(Cancelled):
            cache.get_or_compute("key", compute)

    results: list[bytes] = []
    first = threading.Thread(target=owner, name="owner")
    first.start()
    computing.wait(5)
    second = threading.Thread(
        target=lambda: results.append(cache.get_or_compute("key", compute)), name="waiter"
    )
    second.start()
    time.sleep(0.1)  # the waiter now waits for the owner's computation
    token.cancel()
    first.join(5)
    second.join(5)
    assert results == [b"value"]  # not the owner's Cancelled
    assert calls == ["owner", "waiter"]
    assert cache.get_or_compute("key", compute) == b"value"  # cached


def test_cancelled_batches_nested_deeper_than_the_pool_end_promptly_and_the_pool_keeps_working() -> None:
    def tree(depth: int) -> int:
        if depth == 0:
            time.sleep(0.002)
            return 1
        return sum(FANOUT.run([lambda: tree(depth - 1) for _ in range(4)]))

    tokens = [CancelToken() for _ in range(4)]
    outcomes: list[str] = []

    def caller(token: CancelToken) -> None:
        with cancellation.working_for(token):
            try:
                tree(6)  # 4096 leaves: about 8 s on two cores
                outcomes.append("finished")
            except Cancelled:
                outcomes.append("cancelled")

    callers = [threading.Thread(target=caller, args=(token,)) for token in tokens]
    for thread in callers:
        thread.start()
    time.sleep(0.2)
    started = time.monotonic()
    for token in tokens:
        token.cancel()
    for thread in callers:
        thread.join(10)
    assert outcomes == ["cancelled"] * 4
    assert time.monotonic() - started < 2
    assert FANOUT.run([lambda: tree(2), lambda: 5]) == [16, 5]


class FailingSource(ArraySource):
    """Reads of the lower half fail after filling a big buffer, as a tile that fails to decode after others
    did; those buffers are tracked, to see when they are freed."""

    def __init__(self) -> None:
        super().__init__(np.zeros((128, 128), np.uint16), "yx", storage_unit=(64, 64))
        self.failed_buffers: list[weakref.ref[np.ndarray]] = []

    def read_region(self, level: int, region: tuple[slice, ...]) -> np.ndarray:
        time.sleep(0.05)  # concurrent requests for the chunk wait for this one
        if region[0].start < 64:
            return super().read_region(level, region)
        buffer = np.ones(4 << 20, np.uint8)
        self.failed_buffers.append(weakref.ref(buffer))
        raise ValueError("corrupt tile")


def _failure(read: Callable[[], object]) -> ChunkReadError:
    """The error ``read`` fails with, as an equal copy without traceback: what the test keeps must not keep
    the failed request's frames (nor make cycles of its own with them)."""
    try:
        read()
    except ChunkReadError as error:
        return ChunkReadError(str(error))
    raise AssertionError("the read did not fail")


def _read_stored_chunk(dataset: Dataset) -> ChunkReadError:
    return _failure(lambda: dataset.tree.read_file("0/1/0"))


def _read_computed_chunk(dataset: Dataset) -> ChunkReadError:
    return _failure(lambda: dataset.tree.read_file("1/0/0"))  # two of its four level-0 chunks fail


def _read_from_several_threads(dataset: Dataset) -> ChunkReadError:
    errors: list[ChunkReadError] = []
    readers = [
        threading.Thread(target=lambda: errors.append(_failure(lambda: dataset.tree.read_file("1/0/0"))))
        for _ in range(3)
    ]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join()
    assert len(errors) == 3
    return errors[0]


def _read_through_the_policy(dataset: Dataset) -> ChunkReadError:
    policy = RequestPolicy(dataset.tree)
    try:
        return _failure(lambda: policy.answer(dataset.tree.read, "1/0/0", 0, 100))
    finally:
        policy.close()


def _read_through_the_store(dataset: Dataset) -> ChunkReadError:
    from zarrfs.frontends.store import ZarrfsStore

    store = ZarrfsStore(dataset)

    async def get() -> ChunkReadError:
        # Caught in the coroutine: asyncio.run keeps a cycle of its own with an error it raises.
        try:
            await store.get("1/0/0")
        except ChunkReadError as error:
            return ChunkReadError(str(error))
        raise AssertionError("the read did not fail")

    try:
        return asyncio.run(get())
    finally:
        store.close()


@contextlib.contextmanager
def cyclic_garbage() -> Iterator[list[object]]:
    """Collects the objects made inside the block that only the cyclic collector would free."""
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    found: list[object] = []
    try:
        yield found
        gc.collect()
        found.extend(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


@pytest.mark.parametrize(
    "read",
    [
        _read_stored_chunk,
        _read_computed_chunk,
        _read_from_several_threads,
        _read_through_the_policy,
        _read_through_the_store,
    ],
)
def test_a_failed_request_leaves_no_reference_cycle_and_frees_its_buffers_at_once(
    read: Callable[[Dataset], ChunkReadError], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.CRITICAL)  # captured log records would keep the errors they name
    dataset = build_dataset(FailingSource(), serve_options(chunks="64,64", ngff="0.4", levels=2))
    source = dataset.source
    assert isinstance(source, FailingSource)
    read(dataset)  # first: threads and pools that stay are made now
    source.failed_buffers.clear()
    with cyclic_garbage() as garbage:
        assert "corrupt tile" in str(read(dataset))
        assert source.failed_buffers
        # Freed by reference counting alone, as soon as the request failed.
        assert [buffer() is None for buffer in source.failed_buffers] == [True] * len(source.failed_buffers)
    kinds = (BaseException, types.TracebackType, types.FrameType, np.ndarray)
    assert [type(thing).__name__ for thing in garbage if isinstance(thing, kinds)] == []


def _rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def test_failed_reads_of_big_chunks_give_their_memory_back_through_a_mount(tmp_path: Path) -> None:
    # 64 MiB chunks of a deflate-tiled image whose last tile in the first chunk is corrupt: each read of that
    # chunk decodes 511 tiles into the chunk's buffer, then fails.
    source = tmp_path / "corrupt.tif"
    image = np.add.outer(np.arange(8192), np.arange(8192)).astype(np.uint16)
    tifffile.imwrite(source, image, tile=(256, 256), compression="zlib")
    data = bytearray(source.read_bytes())
    with tifffile.TiffFile(source) as tif:
        page = tif.pages[0]
        last = 15 * 32 + 31  # tile row 15, column 31: the last tile of chunk (0, 0)
        offset, count = page.dataoffsets[last], page.databytecounts[last]
    data[offset : offset + count] = b"\xff" * count
    source.write_bytes(bytes(data))
    options = ("--chunks", "4096,8192", "--levels", "1", "--ngff", "0.4", "--cache-size", "512MiB")
    with mounted(source, tmp_path / "mnt", *options) as mnt:
        pid = _daemon_pid(mnt)
        good = np.frombuffer((mnt / "0" / "1" / "0").read_bytes(), "<u2").reshape(4096, 8192)
        np.testing.assert_array_equal(good, image[4096:])
        time.sleep(0.5)
        before = _rss_bytes(pid)
        for _ in range(12):
            with pytest.raises(OSError) as raised:
                (mnt / "0" / "0" / "0").read_bytes()
            assert raised.value.errno == errno.EIO
        time.sleep(1)  # an idle daemon: nothing runs the cyclic collector now
        grown = _rss_bytes(pid) - before
        # 12 failed reads of 64 MiB: 768 MiB if their buffers stayed; one chunk or so of allocator slack.
        assert grown < 100 * 2**20, f"daemon RSS grew {grown / 2**20:.0f} MiB"
        np.testing.assert_array_equal(
            np.frombuffer((mnt / "0" / "1" / "0").read_bytes(), "<u2").reshape(4096, 8192), image[4096:]
        )
