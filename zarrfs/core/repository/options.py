"""What a user chooses about a repository (a directory tree of many images served as one), checked here."""

from __future__ import annotations

import math
from dataclasses import dataclass

from zarrfs.errors import ZarrfsError

DEFAULT_MAX_OPEN = 64
# A new file shows within about 1.5 s of its last write (settled, plus the listing check every 0.5 s).
DEFAULT_SETTLE_S = 1.0


@dataclass(frozen=True)
class RepositoryOptions:
    """``--max-open``: images open at once (least recently used closed first); ``--settle``: seconds a file
    must stay unchanged before it is shown; ``--follow-symlinks``: follow symbolic links leading out of the
    served directory."""

    max_open: int = DEFAULT_MAX_OPEN
    settle_s: float = DEFAULT_SETTLE_S
    follow_symlinks: bool = False


def repository_options(
    max_open: int = DEFAULT_MAX_OPEN, settle: float = DEFAULT_SETTLE_S, follow_symlinks: bool = False
) -> RepositoryOptions:
    """RepositoryOptions from what a user typed; a one-line ZarrfsError for values out of range."""
    if not isinstance(max_open, int) or isinstance(max_open, bool) or max_open < 1:
        raise ZarrfsError(f"--max-open must be 1 or more, not {max_open!r}")
    try:
        seconds = float(settle)
    except (TypeError, ValueError):
        seconds = math.nan
    if not 0 <= seconds <= 86400:  # NaN fails too
        raise ZarrfsError(f"--settle must be a number of seconds from 0 to 86400 (one day), not {settle!r}")
    return RepositoryOptions(max_open, seconds, bool(follow_symlinks))
