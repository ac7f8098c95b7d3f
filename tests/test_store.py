"""The in-process zarr-python store: the same tree without FUSE, for every generated case."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
import zarr
from tiff_cases import CASES

import zarrfs
from zarrfs.frontends.store import ZarrfsStore


def test_store_lists_keys_and_is_read_only(tmp_path: Path) -> None:
    case = CASES["uint16_tiled_zlib"](tmp_path)
    store = zarrfs.open_store(case.path, chunks="128,128", ngff="0.4", levels=1)
    assert isinstance(store, ZarrfsStore) and store.read_only

    async def listings() -> tuple[list[str], list[str], list[str]]:
        top = [key async for key in store.list_dir("")]
        under = [key async for key in store.list_prefix("0/1/")]
        everything = [key async for key in store.list()]
        return top, under, everything

    top, under, everything = asyncio.run(listings())
    assert sorted(top) == [".zattrs", ".zgroup", ".zmetadata", "0"]
    assert under == ["0/1/0", "0/1/1", "0/1/2"]
    assert len(everything) == 4 + 3 * 3  # four documents (consolidated metadata too) and a 3x3 chunk grid
    assert asyncio.run(store.exists("0/2/2")) and not asyncio.run(store.exists("0/3/0"))
    with pytest.raises(ValueError, match="read-only"):
        zarr.open_group(store, mode="r")["0"][0, 0] = 1
    store.close()


def test_store_honours_byte_ranges(tmp_path: Path) -> None:
    from zarr.abc.store import OffsetByteRequest, RangeByteRequest, SuffixByteRequest
    from zarr.core.buffer import default_buffer_prototype

    case = CASES["uint16_tiled_zlib"](tmp_path)
    store = zarrfs.open_store(case.path)
    prototype = default_buffer_prototype()
    whole = asyncio.run(store.get("0/0/0", prototype)).to_bytes()
    for request, expected in [
        (RangeByteRequest(10, 20), whole[10:20]),
        (OffsetByteRequest(100), whole[100:]),
        (SuffixByteRequest(8), whole[-8:]),
    ]:
        assert asyncio.run(store.get("0/0/0", prototype, request)).to_bytes() == expected
    assert asyncio.run(store.get("0/9/9", prototype)) is None
    store.close()


def test_store_hands_zarr_read_only_views_of_cached_chunks_without_a_thread_hop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zarr.core.buffer import default_buffer_prototype

    from zarrfs.core import requests

    case = CASES["uint16_tiled_zlib"](tmp_path)
    store = zarrfs.open_store(case.path, compressor="none", chunks="128,128", ngff="0.4", levels=1)
    hops = []
    run_for = requests._run_for

    def counting_run_for(*args: object) -> object:  # what a worker thread runs
        hops.append(args)
        return run_for(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(requests, "_run_for", counting_run_for)
    prototype = default_buffer_prototype()
    try:
        first = asyncio.run(store.get("0/0/0", prototype)).as_numpy_array()
        assert len(hops) == 1  # the chunk had to be made
        second = asyncio.run(store.get("0/0/0", prototype)).as_numpy_array()
        assert asyncio.run(store.get(".zgroup", prototype)) is not None
        assert len(hops) == 1  # cached chunks and documents are answered on the event loop
        assert np.shares_memory(first, second) and not second.flags.writeable
        assert second.tobytes() == case.expected[:128, :128].astype("<u2").tobytes()
        np.testing.assert_array_equal(zarr.open_group(store, mode="r")["0"][...], case.expected)
    finally:
        store.close()
