"""The optional disk tier of remote blocks (``--disk-cache DIR``, ``--disk-cache-size SIZE``): blocks fetched
once are read from the local disk on later mounts, by this process or any other.

A block is stored under its key: the object's URL without credentials, the object's identity (its ETag or
version, which changes whenever its content does) and the block's offset and length. A changed object has
another identity, so its blocks have other keys: an old block is never served for a new object (old ones are
evicted in time).

One file a block, in ``DIR/zarrfs-blocks-1/``: a header (a magic, the data's length, its CRC-32 and the
key's SHA-256), then the data. Files are written to a temporary name and renamed into place, so a reader
(of any process) sees a whole file or none; a file whose length, key or checksum does not match (a crash
between write and flush, a damaged disk, another program) is deleted and counts as a miss. Every file is
opened relative to the directory with O_NOFOLLOW: no symlink placed there leads out of it.

The size is bounded by evicting the least recently used files: reads touch a file's modification time, and
each process keeps an index of the directory in memory (built at start, rebuilt after it wrote an eighth of
the size or once a minute) so that a put needs no scan. Several processes sharing a directory each evict
by their own index, so together they may exceed the size by what each wrote since its last rebuild (at most
an eighth of it each) until their next rebuild.

A directory that cannot be written (full disk, read-only, permissions) costs one log line; the cache then
goes on without its disk tier.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import hashlib
import itertools
import logging
import os
import stat
import struct
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from zarrfs.errors import ZarrfsError, one_line

log = logging.getLogger(__name__)

SUBDIRECTORY = "zarrfs-blocks-1"  # the version of the file format is in the name: another never mixes in
DEFAULT_DISK_CACHE_BYTES = 10 * 1024**3
MIN_DISK_CACHE_BYTES = 1024**2
RESCAN_S = 60.0
STALE_TEMPORARY_S = 3600.0  # a temporary file this old was left by a process that died while writing
_MAGIC = b"zfsblk1\n"
_HEADER = struct.Struct("<8sQI32s")  # magic, data length, CRC-32 of the data, SHA-256 of the key
_SUFFIX = ".blk"
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_TEMPORARY = ".tmp-"
# Query parameters that carry credentials or the signature of a pre-signed URL (S3, CloudFront, Google
# Cloud Storage, Azure SAS), compared in lower case: they change whenever a URL is signed anew, and they
# are secrets, so they are no part of an object's key. Any other parameter names another object.
_CREDENTIAL_PARAMETERS = frozenset(
    {"signature", "expires", "awsaccesskeyid", "policy", "key-pair-id", "googleaccessid", "sig", "se", "st"}
    | {"sp", "sv", "sr", "spr", "si", "skoid", "sktid", "skt", "ske", "sks", "skv", "token", "access_token"}
    | {"api_key", "apikey", "key", "password", "secret", "x-api-key"}
)


def object_url(url: str) -> str:
    """``url`` as a key of its object: user info and credential query parameters removed, the rest of the
    query sorted, the fragment dropped. The same object signed anew has the same key."""
    if "://" not in url:
        return url
    parts = urlsplit(url)
    query = sorted(
        (name, value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
        if name.lower() not in _CREDENTIAL_PARAMETERS and not name.lower().startswith(("x-amz-", "x-goog-"))
    )
    return urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[-1], parts.path, urlencode(query), ""))


@dataclass(frozen=True)
class BlockKey:
    """A block of a remote object. ``version`` identifies the object's content (its ETag or version id; a
    size or a modification time alone does not): a changed object must have another."""

    url: str
    version: str
    offset: int
    length: int

    def __post_init__(self) -> None:
        if not self.version:
            raise ValueError("a block key needs the object's version (its ETag or version id)")

    def digest(self) -> bytes:
        fields = (object_url(self.url), self.version, str(self.offset), str(self.length))
        return hashlib.sha256("\0".join(fields).encode("utf-8", "surrogateescape")).digest()


class DiskCache:
    """Blocks on disk, bounded by ``size_bytes``, shared by the processes that use ``directory``."""

    def __init__(self, directory: Path | str, size_bytes: int, rescan_s: float = RESCAN_S) -> None:
        self.directory = Path(directory)
        self.size_bytes = size_bytes
        self.rescan_s = rescan_s
        self._lock = threading.Lock()
        self._index: collections.OrderedDict[str, int] = collections.OrderedDict()  # name -> bytes, LRU first
        self._total = 0
        self._written_since_scan = 0
        self._scanned_at = 0.0
        self._names = itertools.count()
        self._dir_fd: int | None = None
        self._said_off = False
        try:
            self._dir_fd = _open_blocks_directory(self.directory)
            self._rescan()
        except OSError as error:
            self._disable(error)

    @property
    def enabled(self) -> bool:
        return self._dir_fd is not None

    def get(self, key: BlockKey) -> bytes | None:
        """The block's bytes, if stored whole and intact; else None."""
        dir_fd = self._dir_fd
        if dir_fd is None:
            return None
        digest = key.digest()
        name = digest.hex() + _SUFFIX
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        except FileNotFoundError:
            self._forget(name)
            return None
        except OSError as error:
            if error.errno == errno.ELOOP:  # a symlink someone put there: never followed
                self._drop(name, "it is a symbolic link")
                return None
            self._disable(error)
            return None
        try:
            data, problem = _read_block(fd, digest)
            if data is not None:
                _touch(fd)
        except OSError as error:
            data, problem = None, one_line(error)
        finally:
            os.close(fd)
        if data is None:
            self._drop(name, problem)
            return None
        with self._lock:
            if name in self._index:
                self._index.move_to_end(name)
            else:
                self._add(name, _HEADER.size + len(data))
        return data

    def put(self, key: BlockKey, data: bytes) -> None:
        """Store the block (nothing happens when the disk tier is off or the block exceeds the size)."""
        dir_fd = self._dir_fd
        stored = _HEADER.size + len(data)
        if dir_fd is None or stored > self.size_bytes:
            return
        digest = key.digest()
        name = digest.hex() + _SUFFIX
        with self._lock:
            if name in self._index:
                return
        temporary = f"{_TEMPORARY}{os.getpid()}-{threading.get_ident()}-{next(self._names)}"
        header = _HEADER.pack(_MAGIC, len(data), zlib.crc32(data), digest)
        try:
            fd = os.open(temporary, _NEW_FILE, 0o644, dir_fd=dir_fd)
            try:
                _write_all(fd, header)
                _write_all(fd, data)
            finally:
                os.close(fd)
            os.replace(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except OSError as error:
            _unlink(dir_fd, temporary)
            self._disable(error)
            return
        with self._lock:
            self._add(name, stored)
            self._written_since_scan += stored
            rescan = (
                self._written_since_scan > self.size_bytes // 8
                or time.monotonic() - self._scanned_at > self.rescan_s
            )
        if rescan:
            self._rescan()
        else:
            self._evict()

    def close(self) -> None:
        with self._lock:
            dir_fd, self._dir_fd = self._dir_fd, None
        if dir_fd is not None:
            os.close(dir_fd)

    def stored_bytes(self) -> int:
        """What the files of this process's index hold (others' writes since its last rebuild not counted)."""
        with self._lock:
            return self._total

    # --- the index -----------------------------------------------------------------------------------

    def _add(self, name: str, size: int) -> None:
        self._total += size - self._index.get(name, 0)
        self._index[name] = size
        self._index.move_to_end(name)

    def _forget(self, name: str) -> None:
        with self._lock:
            self._total -= self._index.pop(name, 0)

    def _drop(self, name: str, why: str | None) -> None:
        """Delete a damaged (or foreign) block file."""
        log.warning("disk cache: dropped block file %s: %s", name, why)
        self._forget(name)
        dir_fd = self._dir_fd
        if dir_fd is not None:
            _unlink(dir_fd, name)

    def _evict(self) -> None:
        """Delete the least recently used files until the index fits the size."""
        dir_fd = self._dir_fd
        victims = []
        with self._lock:
            while self._total > self.size_bytes and self._index:
                name, size = self._index.popitem(last=False)
                self._total -= size
                victims.append(name)
        for name in victims:
            if dir_fd is not None:
                _unlink(dir_fd, name)

    def _rescan(self) -> None:
        """Rebuild the index from the directory (other processes' files and their use included)."""
        dir_fd = self._dir_fd
        if dir_fd is None:
            return
        found: list[tuple[int, str, int]] = []
        now = time.time()
        with os.scandir(dir_fd) as entries:
            for entry in entries:
                try:
                    status = entry.stat(follow_symlinks=False)
                except FileNotFoundError:  # evicted by another process meanwhile
                    continue
                if entry.name.startswith(_TEMPORARY):
                    if now - status.st_mtime > STALE_TEMPORARY_S:
                        _unlink(dir_fd, entry.name)
                elif entry.name.endswith(_SUFFIX) and stat.S_ISREG(status.st_mode):
                    found.append((status.st_mtime_ns, entry.name, status.st_size))
        found.sort()
        with self._lock:
            self._index = collections.OrderedDict((name, size) for _, name, size in found)
            self._total = sum(size for _, _, size in found)
            self._written_since_scan = 0
            self._scanned_at = time.monotonic()
        self._evict()

    def _disable(self, error: OSError) -> None:
        """Go on without the disk tier, saying so once."""
        with self._lock:
            dir_fd, self._dir_fd = self._dir_fd, None
            self._index.clear()
            self._total = 0
            say, self._said_off = not self._said_off, True
        if say:
            why = error.strerror or one_line(error)
            log.error("disk cache %s: %s; going on without it", self.directory, why)
        if dir_fd is not None:
            os.close(dir_fd)


def _open_blocks_directory(directory: Path) -> int:
    """A descriptor of ``directory/SUBDIRECTORY``, made if missing; a symlink there is refused."""
    root = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with contextlib.suppress(FileExistsError):
            os.mkdir(SUBDIRECTORY, 0o755, dir_fd=root)
        return os.open(SUBDIRECTORY, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=root)
    finally:
        os.close(root)


def _read_block(fd: int, digest: bytes) -> tuple[bytes | None, str | None]:
    """The data of a block file, or None and what is wrong with the file."""
    status = os.fstat(fd)
    if not stat.S_ISREG(status.st_mode):
        return None, "not a regular file"
    header = os.pread(fd, _HEADER.size, 0)
    if len(header) < _HEADER.size:
        return None, f"{status.st_size} bytes, shorter than its header"
    magic, length, checksum, stored_digest = _HEADER.unpack(header)
    if magic != _MAGIC or stored_digest != digest:
        return None, "not a block file of this key"
    if status.st_size != _HEADER.size + length:
        return None, f"{status.st_size} bytes where its header announces {_HEADER.size + length}"
    data = os.pread(fd, length, _HEADER.size)  # whole: a regular file reads short only at its end
    if len(data) != length or zlib.crc32(data) != checksum:
        return None, "its checksum does not match its data"
    return data, None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _touch(fd: int) -> None:
    """Mark a file as just used (its modification time: atime is often not kept)."""
    with contextlib.suppress(OSError):  # a directory that can be read but not written: a less exact order
        os.utime(fd)


def _unlink(dir_fd: int, name: str) -> None:
    with contextlib.suppress(OSError):  # gone already (another process evicted it), or not ours to delete
        os.unlink(name, dir_fd=dir_fd)


# --- the options -----------------------------------------------------------------------------------------


def parse_disk_cache_size(text: str) -> int:
    """``--disk-cache-size``: a size as ``parse_size`` reads it, at least MIN_DISK_CACHE_BYTES."""
    from zarrfs.core.options import human_bytes, parse_size  # here: sources do not import the core

    size = parse_size(text, "--disk-cache-size")
    if size < MIN_DISK_CACHE_BYTES:
        least = human_bytes(MIN_DISK_CACHE_BYTES)
        raise ZarrfsError(f"invalid size {text!r} for --disk-cache-size: it must be at least {least}")
    return size


def check_disk_cache_directory(text: str) -> Path:
    """``--disk-cache``: a directory this process can write to (made if missing), as an absolute path."""
    directory = Path(text).expanduser().absolute()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ZarrfsError(f"--disk-cache {text}: not a directory") from None
    except OSError as error:
        raise ZarrfsError(f"--disk-cache {text}: cannot create it ({error.strerror})") from None
    if not directory.is_dir():
        raise ZarrfsError(f"--disk-cache {text}: not a directory")
    probe = directory / f"{_TEMPORARY}probe-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise ZarrfsError(f"--disk-cache {text}: cannot write there ({error.strerror})") from None
    return directory
