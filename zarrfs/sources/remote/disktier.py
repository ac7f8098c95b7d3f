"""The disk tier of remote blocks as sources use it: one DiskCache (diskcache.py) a directory per process,
shared by every remote object, and each opened object's view of it, keyed by the object's URL (credentials
removed) and the version of its content at open (its S3 VersionId, else its strong ETag).

An object without such a version (no ETag, or a weak one: the same for different bytes) is not kept on disk:
nothing would tell its changed content from the old, so its blocks could be mixed.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

from zarrfs.errors import ZarrfsError
from zarrfs.sources.remote.diskcache import (
    DEFAULT_DISK_CACHE_BYTES,
    BlockKey,
    DiskCache,
    check_disk_cache_directory,
    object_url,
    parse_disk_cache_size,
)
from zarrfs.sources.remote.identity import ObjectIdentity

log = logging.getLogger(__name__)

_caches: dict[Path, DiskCache] = {}
_caches_lock = threading.Lock()


def disk_cache_options(directory: str | os.PathLike[str] | None, size: str | int | None) -> dict[str, Any]:
    """``--disk-cache DIR`` and ``--disk-cache-size SIZE`` as RemoteOptions fields; a one-line ZarrfsError
    for a directory that cannot be written or a size too small, or a size without a directory."""
    if directory is None:
        if size is not None:
            raise ZarrfsError("--disk-cache-size needs --disk-cache DIR")
        return {}
    size_bytes = DEFAULT_DISK_CACHE_BYTES if size is None else parse_disk_cache_size(str(size))
    return {"disk_cache": check_disk_cache_directory(os.fspath(directory)), "disk_cache_size": size_bytes}


def shared_disk_cache(directory: Path, size_bytes: int) -> DiskCache:
    """The DiskCache of ``directory`` in this process (made on first use)."""
    with _caches_lock:
        cache = _caches.get(directory)
        if cache is None:
            cache = _caches[directory] = DiskCache(directory, size_bytes)
        return cache


def content_version(identity: ObjectIdentity) -> str | None:
    """What names the object's content: its version id, else its strong ETag; None without either."""
    if identity.version:
        return f"version {identity.version}"
    if identity.etag and not identity.etag.startswith("W/"):
        return f"etag {identity.etag} size {identity.size}"
    return None


class DiskBlocks:
    """One opened object's blocks on disk."""

    def __init__(self, cache: DiskCache, url: str, version: str) -> None:
        self.cache = cache
        self.url = object_url(url)  # no credentials: the key holds none
        self.version = version

    def _key(self, offset: int, length: int) -> BlockKey:
        return BlockKey(self.url, self.version, offset, length)

    def get(self, offset: int, length: int) -> bytes | None:
        data = self.cache.get(self._key(offset, length))
        return data if data is not None and len(data) == length else None

    def put(self, offset: int, data: bytes) -> None:
        self.cache.put(self._key(offset, len(data)), data)


def disk_blocks(
    directory: Path | None, size_bytes: int, url: str, identity: ObjectIdentity, name: str
) -> DiskBlocks | None:
    """The disk tier of the object at ``url`` as opened (``name``: its URL as shown), or None: no
    ``--disk-cache``, or an object without a version of its content."""
    if directory is None:
        return None
    version = content_version(identity)
    if version is None:
        log.info("%s: no ETag or version to tell its content by: its blocks are not kept on disk", name)
        return None
    return DiskBlocks(shared_disk_cache(directory, size_bytes), url, version)
