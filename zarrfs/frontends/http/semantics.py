"""HTTP rules that need no server library: request targets to tree paths, byte ranges, validators."""

from __future__ import annotations

import hashlib
import re
import urllib.parse
from dataclasses import dataclass

# A Range header this server answers: one range of bytes (RFC 9110 14.1.2).
_RANGE = re.compile(r"bytes=(?:(\d{1,19})-(\d{0,19})|-(\d{1,19}))")


class RangeNotSatisfiable(Exception):
    """The requested range lies outside the file (answered 416 with the file's size)."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


@dataclass(frozen=True)
class ByteRange:
    """``bytes=a-b`` (``last`` included), ``bytes=a-`` (``last`` None) or ``bytes=-n`` (``first`` None)."""

    first: int | None
    last: int | None

    def span(self, size: int) -> tuple[int, int]:
        """The ``[start, stop)`` bytes of a file of ``size`` bytes this range covers; RangeNotSatisfiable when
        none."""
        if self.first is None:
            assert self.last is not None
            if self.last == 0 or size == 0:
                raise RangeNotSatisfiable(size)
            return max(0, size - self.last), size
        if self.first >= size:
            raise RangeNotSatisfiable(size)
        stop = size if self.last is None else min(self.last + 1, size)
        return self.first, stop


def parse_range(header: str | None) -> ByteRange | None:
    """The single byte range a Range header asks for; None for no header and for what this server does not
    answer with a part (several ranges, other units, malformed values): then the whole file is sent, as
    RFC 9110 allows."""
    if header is None:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first, last, suffix = match.groups()
    if suffix is not None:
        return ByteRange(None, int(suffix))
    if last and int(last) < int(first):
        return None  # invalid: ignored, the whole file is sent
    return ByteRange(int(first), int(last) if last else None)


def tree_path(target: str) -> str | None:
    """The path in the served tree (no leading or trailing slash, "" for the root) that a request target
    names; None for anything else: absolute URLs, ``.`` or ``..`` segments (encoded or not), empty segments,
    NUL, backslashes and bytes that are not UTF-8. Nothing outside the tree can be named."""
    if not target.startswith("/") or target.startswith("//"):
        return None  # absolute-form ("http://...") or a scheme-relative URL
    path = target.partition("?")[0].partition("#")[0]
    try:
        decoded = urllib.parse.unquote(path, errors="strict")
    except UnicodeDecodeError:
        return None
    if "\x00" in decoded or "\\" in decoded:
        return None
    parts = decoded[1:].split("/")
    if parts[-1] == "":
        parts.pop()  # a trailing slash names the directory
    if any(part in ("", ".", "..") for part in parts):
        return None
    return "/".join(parts)


def query_value(target: str, name: str) -> str | None:
    values = urllib.parse.parse_qs(target.partition("?")[2]).get(name)
    return values[0] if values else None


def etag(identity: str, path: str, variant: str = "") -> str:
    """A strong validator from the served source's identity (and serving options) and the path: it changes
    whenever the bytes at that path could."""
    digest = hashlib.blake2b(f"{identity}\0{path}\0{variant}".encode(), digest_size=12).hexdigest()
    return f'"{digest}"'


def matches_any(tag: str, if_none_match: str) -> bool:
    """Whether an If-None-Match header names ``tag`` (weak comparison, as RFC 9110 13.1.2 asks)."""
    candidates = [candidate.strip() for candidate in if_none_match.split(",")]
    return "*" in candidates or any(candidate.removeprefix("W/") == tag for candidate in candidates)


def accepts(header: str | None, token: str) -> bool:
    """Whether an Accept or Accept-Encoding header takes ``token`` (with a non-zero weight)."""
    for item in (header or "").split(","):
        name, _, parameters = item.partition(";")
        if name.strip().lower() == token:
            weight = parameters.replace(" ", "").lower()
            return weight not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False
