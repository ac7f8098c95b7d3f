"""Where a store's files are: a local directory, or a prefix at a URL (``https://host/image.zarr``,
``s3://bucket/image.zarr``). Metadata documents and passed-through chunks are read through here; tensorstore
reads chunks itself through the kvstore each gives."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import Any

from zarrfs.errors import SourceError


class OversizedFile(Exception):
    """A file larger than the caller's limit, refused before (or instead of) being kept."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


class StoreFiles(ABC):
    """The files under a store's root. ``root`` names it in messages (a URL without credentials)."""

    root: str

    @abstractmethod
    def location(self, relative: str) -> str:
        """Where the file ``relative`` (``/``-separated) is, as shown and watched."""

    @abstractmethod
    def read(self, relative: str, limit: int | None = None) -> bytes | None:
        """The file's bytes; None where there is no such file; OversizedFile when over ``limit`` bytes."""

    def document(self, relative: str) -> bytes | None:
        """A metadata document's bytes (None where there is none): watched for changes from then on."""
        return self.read(relative)

    @abstractmethod
    def directories(self, relative: str) -> list[str]:
        """The names of the directories in ``relative``, sorted; empty where the store cannot be listed."""

    @abstractmethod
    def kvstore(self, relative: str) -> dict[str, Any]:
        """tensorstore's kvstore spec for the directory ``relative``."""


class LocalFiles(StoreFiles):
    def __init__(self, root: str) -> None:
        self.root = root

    def location(self, relative: str) -> str:
        return os.path.join(self.root, *relative.split("/")) if relative else self.root

    def read(self, relative: str, limit: int | None = None) -> bytes | None:
        path = self.location(relative)
        if not os.path.isfile(path):  # a stat: a file that is not there is never opened
            return None
        try:
            descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except PermissionError:
            raise SourceError(f"no permission to read {path}") from None
        except OSError as error:
            raise SourceError(f"cannot read {path}: {error.strerror}") from None
        try:
            status = os.fstat(descriptor)
            if limit is not None and status.st_size > limit:
                raise OversizedFile(status.st_size)  # never read (nor allocated) whole
            data = os.pread(descriptor, status.st_size, 0)
            if len(data) != status.st_size:
                raise SourceError(f"file {path} shrank while it was read")
            return data
        except OSError as error:
            raise SourceError(f"cannot read {path}: {error.strerror}") from None
        finally:
            os.close(descriptor)

    def directories(self, relative: str) -> list[str]:
        directory = self.location(relative)
        try:
            return sorted(entry.name for entry in os.scandir(directory) if entry.is_dir())
        except OSError as error:
            raise SourceError(f"cannot list {directory}: {error.strerror}") from None

    def kvstore(self, relative: str) -> dict[str, Any]:
        return {"driver": "file", "path": self.location(relative)}
