"""Telling URLs from paths, and the form of a URL that may be shown: without credentials.

A URL may carry secrets in its user info (``https://user:password@host/``) and in its query string (a
pre-signed URL's signature, an access token): neither is ever shown, logged or put in a file system's name.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

# A scheme of two or more letters then "://" (one letter would be a Windows drive).
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")


def is_url(source: object) -> bool:
    """True for ``scheme://...`` strings: a source to open through fsspec rather than the file system."""
    return isinstance(source, str) and _URL.match(source) is not None


def protocol(url: str) -> str:
    """The URL's scheme, lower case (``s3``, ``https``)."""
    return url.split("://", 1)[0].lower()


def redact(url: str) -> str:
    """``url`` as it may be shown: user info and query string replaced by ``***`` (a fragment dropped)."""
    if not is_url(url):
        return url
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    netloc = f"***@{host}" if "@" in parts.netloc else host
    return urlunsplit((parts.scheme, netloc, parts.path, "***" if parts.query else "", ""))


_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>)]+")


def redact_text(text: str) -> str:
    """``text`` (a library's error message) with every URL in it redacted."""
    return _URL_IN_TEXT.sub(lambda match: redact(match.group(0)), text)


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` (an error message from a library) with every secret in it replaced by ``***``."""
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 3:  # a one- or two-character value would mangle the message, not protect anything
            text = text.replace(secret, "***")
    return text
