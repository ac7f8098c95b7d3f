"""Block arithmetic and the decoded-block cache, for any reader that stores pixels in blocks (tiles, strips,
chunks)."""

from __future__ import annotations

import numpy as np

from zarrfs.lru import ByteLRUCache


def blocks_touched(start: int, stop: int, block_size: int) -> range:
    """The numbers of the blocks of ``block_size`` that indices start..stop-1 fall in."""
    return range(start // block_size, (stop - 1) // block_size + 1)


def decoded_block_cache(capacity_bytes: int) -> ByteLRUCache[np.ndarray]:
    """Decoded blocks kept for the next region that needs them (typically one huge strip read chunk by
    chunk). A block larger than the whole capacity is still kept, alone: the alternative is decoding a huge
    strip again for every chunk cut from it."""
    return ByteLRUCache(capacity_bytes, sizeof=lambda array: array.nbytes, keep_oversized=True)
