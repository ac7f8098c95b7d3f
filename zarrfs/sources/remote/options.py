"""How to reach remote sources: anonymous access and fsspec storage options, with their values never shown."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zarrfs.errors import ZarrfsError


@dataclass(frozen=True)
class RemoteOptions:
    """``anon``: no credentials (public buckets); ``storage`` (``--storage-option KEY=VALUE``): keyword
    arguments of the protocol's fsspec file system, e.g. ``endpoint_url`` or ``key`` for S3;
    ``disk_cache`` and ``disk_cache_size`` (``--disk-cache DIR``, ``--disk-cache-size``): the disk tier of
    fetched blocks (disktier.py), None: none."""

    anon: bool = False
    storage: tuple[tuple[str, Any], ...] = field(default=())
    disk_cache: Path | None = None
    disk_cache_size: int = 0

    def __repr__(self) -> str:
        # Values may be keys and tokens: a repr ends up in logs, ETags and tracebacks.
        names = ", ".join(f"{name}=***" for name, _ in self.storage)
        return f"RemoteOptions(anon={self.anon}, storage=({names}))"

    @property
    def is_default(self) -> bool:
        return not self.anon and not self.storage

    def storage_options(self) -> dict[str, Any]:
        return dict(self.storage)

    def secrets(self) -> tuple[str, ...]:
        """Every option value as text: scrubbed from any message a library makes."""
        return tuple(str(value) for _, value in self.storage)


def _value(text: str) -> Any:
    """``true``, ``12``, ``{"a": 1}`` as JSON values; anything else as the string it is."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_storage_options(given: Iterable[str] | Mapping[str, Any] | None) -> tuple[tuple[str, Any], ...]:
    """``KEY=VALUE`` strings (values read as JSON where they parse) or a mapping, as sorted pairs."""
    if given is None:
        return ()
    if isinstance(given, Mapping):
        return tuple(sorted(given.items()))
    pairs = {}
    for item in given:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            # The item may be a secret given wrongly: say only its key part.
            raise ZarrfsError(f"--storage-option takes KEY=VALUE, not {name.strip()[:40]!r} without '='")
        pairs[name.strip()] = _value(text)
    return tuple(sorted(pairs.items()))
