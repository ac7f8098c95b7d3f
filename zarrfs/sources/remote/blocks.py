"""A remote object's bytes in aligned blocks, kept in a byte-bounded LRU (a share of ``--cache-size``).

A read asks for the blocks it covers; the missing ones are fetched in as few requests as possible (runs of
adjacent blocks merged into one range, runs requested concurrently) through ``fetch_blocks``, the one place
blocks come from the network; with a disk tier (``--disk-cache``, disktier.py) it looks there first and
keeps what it fetched there.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from zarrfs.lru import ByteLRUCache
from zarrfs.sources.remote.disktier import DiskBlocks
from zarrfs.sources.remote.objects import RemoteObject

BLOCK_BYTES = 256 * 2**10
# One request never asks for more than this (a huge read becomes several concurrent requests).
MAX_REQUEST_BYTES = 16 * 2**20


def runs(blocks: Iterable[int], max_blocks: int) -> list[range]:
    """Sorted block numbers as runs of adjacent ones, each at most ``max_blocks`` long."""
    result: list[range] = []
    for block in sorted(set(blocks)):
        if result and result[-1].stop == block and len(result[-1]) < max_blocks:
            result[-1] = range(result[-1].start, block + 1)
        else:
            result.append(range(block, block + 1))
    return result


class BlockCache:
    def __init__(
        self,
        remote: RemoteObject,
        capacity_bytes: int,
        block_bytes: int = BLOCK_BYTES,
        disk: DiskBlocks | None = None,
    ) -> None:
        self.remote = remote
        self.disk = disk
        self.block_bytes = block_bytes
        self.size = remote.identity.size
        self.count = -(-self.size // block_bytes)
        self._cache: ByteLRUCache[bytes] = ByteLRUCache(capacity_bytes)

    @property
    def capacity_bytes(self) -> int:
        return self._cache.capacity_bytes

    def resize(self, capacity_bytes: int) -> None:
        self._cache.capacity_bytes = capacity_bytes

    def _span(self, block: int) -> tuple[int, int]:
        start = block * self.block_bytes
        return start, min(start + self.block_bytes, self.size)

    def fetch_blocks(self, blocks: Sequence[int]) -> dict[int, bytes]:
        """The listed blocks from the disk tier, the others from the object: runs of adjacent blocks in one
        request each, concurrently (and then kept on disk)."""
        fetched: dict[int, bytes] = {}
        if self.disk is not None:
            for block in blocks:
                start, stop = self._span(block)
                data = self.disk.get(start, stop - start)
                if data is not None:
                    fetched[block] = data
        grouped = runs(
            (block for block in blocks if block not in fetched), max(1, MAX_REQUEST_BYTES // self.block_bytes)
        )
        spans = [(self._span(run[0])[0], self._span(run[-1])[1]) for run in grouped]
        for run, (start, _), data in zip(
            grouped, spans, self.remote.fetch(spans) if spans else [], strict=True
        ):
            for block in run:
                first, stop = self._span(block)
                fetched[block] = data[first - start : stop - start]
                if self.disk is not None:
                    self.disk.put(first, fetched[block])
        return fetched

    def blocks(self, wanted: Iterable[int], ahead: int = 0) -> dict[int, bytes]:
        """The blocks ``wanted``, from the cache or fetched; when any is missing, up to ``ahead`` more blocks
        after the last one wanted come with them (read-ahead for sequential parsers)."""
        self.remote.check_seen()  # a changed object serves nothing more, not even blocks kept from before
        wanted = sorted(set(wanted))
        found: dict[int, bytes] = {}
        missing: list[int] = []
        for block in wanted:
            data = self._cache.peek(block)
            if data is None:
                missing.append(block)
            else:
                found[block] = data
        if missing:
            last = wanted[-1]
            extra = [
                block
                for block in range(last + 1, min(last + 1 + ahead, self.count))
                if self._cache.peek(block) is None
            ]
            for block, data in self.fetch_blocks(missing + extra).items():
                kept = self._cache.get_or_compute(block, lambda data=data: data)  # type: ignore[misc]
                if block in missing:
                    found[block] = kept
        return found

    def _covering(self, ranges: Sequence[tuple[int, int]]) -> set[int]:
        return {
            block
            for start, stop in ranges
            if stop > start
            for block in range(start // self.block_bytes, (stop - 1) // self.block_bytes + 1)
        }

    def prefetch(self, ranges: Sequence[tuple[int, int]]) -> None:
        """Fetch the blocks of every (start, stop) range that are not cached, all at once."""
        size = self.size
        needed = self._covering([(min(start, size), min(stop, size)) for start, stop in ranges])
        if needed:
            self.blocks(needed)

    def read_ranges(self, ranges: Sequence[tuple[int, int]], ahead: int = 0) -> list[memoryview]:
        """Each (start, stop) range of the object (clamped to its size), with every block any of them needs
        fetched at once."""
        size = self.size
        clamped = [(min(start, size), min(stop, size)) for start, stop in ranges]
        needed = self._covering(clamped)
        blocks = self.blocks(needed, ahead) if needed else {}
        result = []
        for start, stop in clamped:
            if stop <= start:
                result.append(memoryview(b""))
                continue
            first, last = start // self.block_bytes, (stop - 1) // self.block_bytes
            if first == last:
                offset = first * self.block_bytes
                result.append(memoryview(blocks[first])[start - offset : stop - offset])
                continue
            joined = b"".join(blocks[block] for block in range(first, last + 1))
            offset = first * self.block_bytes
            result.append(memoryview(joined)[start - offset : stop - offset])
        return result
