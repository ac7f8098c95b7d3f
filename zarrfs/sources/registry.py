"""Where sources are, and the registry of readers that open them.

A reader decides from a ``Location`` (one file, one directory such as a Zarr or N5 dataset, or several files
that form one image) whether it opens it, and takes its options by name. Built-in readers come first, then
those that installed packages register under the entry-point group ``zarrfs.sources``.
"""

from __future__ import annotations

import logging
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, ClassVar

from zarrfs.errors import SourceError
from zarrfs.sources.base import ImageSource
from zarrfs.sources.remote.urls import is_url, redact

if TYPE_CHECKING:
    from zarrfs.sources.remote.file import RemoteFile
    from zarrfs.sources.remote.location import RemoteLocation
    from zarrfs.sources.remote.options import RemoteOptions

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "zarrfs.sources"
# Enough for every signature a reader sniffs (TIFF needs 4 bytes, HDF5 8 at offset 0, NIfTI 4 at 344).
HEADER_BYTES = 512
DEFAULT_BLOCK_CACHE_BYTES = 128 * 2**20


@dataclass(frozen=True)
class Location:
    """What a user named as a source: one file or directory, or several files read as one image (a file
    sequence: a glob pattern, a list file, or a list of paths), or an object at a URL (``remote``; its path is
    the URL as it may be shown, without credentials)."""

    paths: tuple[str, ...]  # absolute; exactly one unless a file sequence
    sequence: bool = False
    named: str = ""  # what the user named (a path, a pattern, a list file), for messages; default: the path
    remote: RemoteLocation | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not self.named:
            object.__setattr__(self, "named", self.paths[0])

    @classmethod
    def of(
        cls,
        source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        remote: RemoteOptions | None = None,
    ) -> Location:
        """A path, a glob pattern (a path with ``*``, ``?`` or ``[`` that names no file as it is: its files in
        natural order), a list of paths (a sequence, in that order), or a URL (reached with ``remote``)."""
        from zarrfs.sources.remote.location import RemoteLocation
        from zarrfs.sources.remote.options import RemoteOptions
        from zarrfs.sources.sequence.names import expand_glob, is_glob

        if is_url(source):
            assert isinstance(source, str)
            return cls((redact(source),), remote=RemoteLocation(source, remote or RemoteOptions()))
        if remote is not None and not remote.is_default:
            raise SourceError("--anon and --storage-option apply to URL sources only (http://, s3://, ...)")
        if isinstance(source, str | os.PathLike):
            path = os.path.abspath(os.fspath(source))
            if is_glob(path):
                return cls(expand_glob(path), sequence=True, named=path)
            return cls((path,))
        named = [os.path.abspath(os.fspath(path)) for path in source]
        if not named:
            raise SourceError("no source files given")
        return cls(tuple(named), sequence=True)

    @classmethod
    def listed(cls, list_file: str | os.PathLike[str]) -> Location:
        """The sequence a list file names, one path a line relative to the list's directory, in its order."""
        from zarrfs.sources.sequence.names import read_list

        path = os.path.abspath(os.fspath(list_file))
        return cls(read_list(path), sequence=True, named=path)

    @property
    def path(self) -> str:
        """The one path (the first file of a sequence)."""
        return self.paths[0]

    @property
    def is_sequence(self) -> bool:
        return self.sequence

    @cached_property
    def is_directory(self) -> bool:
        """A directory; at a URL, a prefix: what is not an object (a directory reader may find a store)."""
        if self.remote is not None:
            return not self.remote.is_object()
        return not self.is_sequence and os.path.isdir(self.path)

    @cached_property
    def is_file(self) -> bool:
        if self.remote is not None:
            return self.remote.is_object()
        return not self.is_sequence and os.path.isfile(self.path)

    @cached_property
    def header(self) -> bytes:
        """The first HEADER_BYTES of the (first) file; b"" for a directory. Read once."""
        if self.is_directory:
            return b""
        return _read_header(self.path) if self.remote is None else self.remote.header(HEADER_BYTES)

    def remote_file(self, block_cache_bytes: int) -> RemoteFile | None:
        """For a URL, the object to read, keeping its blocks within half of ``block_cache_bytes`` (see
        ``reader_cache_bytes``); None for local files."""
        return None if self.remote is None else self.remote.open_file(block_cache_bytes // 2)

    def reader_cache_bytes(self, block_cache_bytes: int) -> int:
        """What of ``block_cache_bytes`` is left for the reader's decoded blocks: half for a URL, whose
        fetched blocks take the other half."""
        return block_cache_bytes if self.remote is None else block_cache_bytes - block_cache_bytes // 2

    def check_exists(self) -> None:
        """Raise a one-line SourceError unless every path is there and readable."""
        if self.remote is not None:
            self.header  # noqa: B018  (opens the object: other failures than 403 and 404 are reported here)
            return
        for path in self.paths:
            if not os.path.exists(path):
                raise SourceError(f"source not found: {path}")
            if not (os.path.isdir(path) or os.path.isfile(path)):
                raise SourceError(f"source is not a regular file: {path}")
        if not self.is_directory:
            self.header  # noqa: B018  (reads it: an empty or unreadable file is reported here)


def _read_header(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            header = handle.read(HEADER_BYTES)
    except PermissionError:
        raise SourceError(f"no permission to read source: {path}") from None
    except OSError as error:
        raise SourceError(f"cannot read source {path}: {error.strerror}") from None
    if not header:
        raise SourceError(f"source is empty (0 bytes): {path}")
    return header


class Reader(ABC):
    """One source format. ``options`` names the per-format options it takes (name -> one line of help);
    ``open`` receives only those the user set."""

    name: ClassVar[str]
    options: ClassVar[Mapping[str, str]] = {}

    @abstractmethod
    def claims(self, location: Location) -> bool:
        """Whether this reader opens ``location``: decided from names and first bytes, cheaply."""

    @abstractmethod
    def open(self, location: Location, options: Mapping[str, Any], block_cache_bytes: int) -> ImageSource:
        """Open the source: metadata only. ``block_cache_bytes`` bounds decoded blocks the source keeps
        (blocks larger than one chunk, such as one huge strip)."""


def _builtin_readers() -> list[Reader]:
    from zarrfs.sources.hdf5 import Hdf5Reader
    from zarrfs.sources.nifti import NiftiReader
    from zarrfs.sources.sequence import SequenceReader
    from zarrfs.sources.tiff import TiffReader
    from zarrfs.sources.zarrstore import ZarrReader

    return [TiffReader(), SequenceReader(), Hdf5Reader(), NiftiReader(), ZarrReader()]


def _as_reader(loaded: object, name: str) -> Reader:
    """An entry point names a Reader instance, a Reader subclass, or a function returning a Reader."""
    candidate = loaded() if callable(loaded) and not isinstance(loaded, Reader) else loaded
    if not isinstance(candidate, Reader):
        raise TypeError(f"entry point {name!r} gives {type(candidate).__name__}, not a zarrfs Reader")
    return candidate


class Registry:
    """The readers zarrfs knows, tried in order: built-in ones, then entry points, then registered ones."""

    def __init__(self) -> None:
        self._readers: list[Reader] | None = None
        self._added: list[Reader] = []
        self._lock = threading.Lock()

    def readers(self) -> list[Reader]:
        with self._lock:
            if self._readers is None:
                self._readers = _builtin_readers() + list(self._entry_point_readers())
            return [*self._readers, *self._added]

    def register(self, reader: Reader) -> None:
        """Add a reader from code (entry points are found by themselves)."""
        with self._lock:
            self._added.append(reader)

    def reload(self) -> None:
        """Look up the entry points again (after installing a package in a running process)."""
        with self._lock:
            self._readers = None

    @staticmethod
    def _entry_point_readers() -> Iterable[Reader]:
        for point in entry_points(group=ENTRY_POINT_GROUP):
            try:
                yield _as_reader(point.load(), point.name)
            except Exception as error:  # a broken plugin must not stop the formats that work
                log.warning("source reader %r (%s) not loaded: %s", point.name, point.value, error)

    def find(self, location: Location, format_name: str | None = None) -> Reader:
        readers = self.readers()
        names = ", ".join(reader.name for reader in readers)
        if format_name is not None:
            for reader in readers:
                if reader.name.lower() == format_name.lower():
                    return reader
            raise SourceError(f"unknown format {format_name!r} (known: {names})")
        location.check_exists()
        for reader in readers:
            if reader.claims(location):
                return reader
        if location.remote is not None and location.remote.missing is not None:
            raise location.remote.missing  # no object, and no reader finds a store there: say why (403, 404)
        if location.is_directory:
            raise SourceError(
                f"source is a directory, not an image any reader opens ({names}): {location.path}"
            )
        raise SourceError(f"not a supported image format (supported: {names}): {location.path}")


REGISTRY = Registry()


def check_options(reader: Reader, options: Mapping[str, Any]) -> None:
    """A one-line error for options the reader does not take."""
    unknown = sorted(name for name in options if name not in reader.options)
    if unknown:
        flags = ", ".join("--" + name.replace("_", "-") for name in unknown)
        takes = ", ".join("--" + name.replace("_", "-") for name in reader.options) or "no format options"
        raise SourceError(f"{flags} does not apply to {reader.name} sources ({reader.name} takes: {takes})")


def locate(
    source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | Location,
    options: Mapping[str, Any],
    remote: RemoteOptions | None = None,
) -> Location:
    """The location ``source`` names, or the files of the ``sequence_list`` option when it is set; a URL is
    reached with ``remote``."""
    if isinstance(source, Location):
        return source
    if options.get("sequence_list") is not None:
        return Location.listed(options["sequence_list"])
    return Location.of(source, remote)


def open_source(
    source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | Location,
    options: Mapping[str, Any] | None = None,
    block_cache_bytes: int = DEFAULT_BLOCK_CACHE_BYTES,
    format_name: str | None = None,
    remote: RemoteOptions | None = None,
) -> ImageSource:
    """Open ``source`` with the first reader that claims it (or the one named ``format_name``).

    ``options`` are per-format options by name (e.g. ``series``); None values count as not set. With
    ``sequence_list`` set, the files it names are the source. ``remote`` says how to reach a URL."""
    given = {name: value for name, value in (options or {}).items() if value is not None}
    location = locate(source, given, remote)
    reader = REGISTRY.find(location, format_name)
    check_options(reader, given)
    return reader.open(location, given, block_cache_bytes)
