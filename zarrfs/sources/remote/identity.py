"""What tells a remote object from a changed one: its size, ETag, version and modification time at open."""

from __future__ import annotations

from dataclasses import dataclass

from zarrfs.errors import SourceError


@dataclass(frozen=True)
class ObjectIdentity:
    size: int
    etag: str | None = None  # as the server sends it, quotes included
    version: str | None = None  # an S3 VersionId, where the bucket keeps versions
    mtime_ns: int = 0  # Last-Modified; 0 when the server gives none
    last_modified: str | None = None  # the header as sent, for If-Unmodified-Since

    def change_to(self, now: ObjectIdentity) -> str | None:
        """What changed from this identity to ``now``, in words (None when nothing did)."""
        if now.size != self.size:
            return f"changed size ({self.size} -> {now.size} bytes)"
        if self.etag and now.etag and now.etag != self.etag:
            return f"was replaced (ETag {self.etag} -> {now.etag})"
        if self.version and now.version and now.version != self.version:
            return "was replaced (a new version)"
        if self.mtime_ns and now.mtime_ns and now.mtime_ns != self.mtime_ns:
            return "was modified (its Last-Modified changed)"
        return None


class RemoteError(SourceError):
    """A remote request failed; ``status`` is the HTTP status where there was one (for retry decisions)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ObjectChangedError(RemoteError):
    """The object is no longer the one opened: a pinned request was refused, or answered by another one.
    ``phrase`` says what happened without naming the object ("changed size (10 -> 12 bytes)")."""

    def __init__(self, message: str, phrase: str, status: int | None = None) -> None:
        super().__init__(message, status)
        self.phrase = phrase
