"""``/.zarrfs/stats.json``: what a repository's daemon is doing, as one JSON document.

Its size is padded (with spaces, which JSON allows) to a multiple of PAGE_BYTES: a client reads as many bytes
as the size it was told, and the figures change between that lookup and the read."""

from __future__ import annotations

import json
import math
from typing import Any

PAGE_BYTES = 4096


def stats_document(figures: dict[str, Any]) -> bytes:
    text = json.dumps(figures, indent=2, sort_keys=True, ensure_ascii=False).encode()
    padded = math.ceil((len(text) + 1) / PAGE_BYTES) * PAGE_BYTES
    return text + b" " * (padded - len(text) - 1) + b"\n"
