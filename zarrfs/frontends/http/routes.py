"""One request in, one reply out: methods, authorization, validators, ranges, CORS and error statuses, with
every file answered through the request policy (documents and cached chunks at once, the rest in workers)."""

from __future__ import annotations

import email.utils
import functools
import gzip
import hmac
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from zarrfs.core.describe import printable
from zarrfs.core.requests import RequestPolicy, RequestTimeout
from zarrfs.core.tree import FileBytes
from zarrfs.frontends.http.files import ServedFiles
from zarrfs.frontends.http.index import Page
from zarrfs.frontends.http.semantics import (
    RangeNotSatisfiable,
    accepts,
    etag,
    matches_any,
    parse_range,
    query_value,
    tree_path,
)
from zarrfs.sources.remote.identity import RemoteError
from zarrfs.sources.remote.retry import RemoteDeadline

log = logging.getLogger("zarrfs")

METHODS = "GET, HEAD, OPTIONS"
# Chunk bytes change only with the source (and then the ETag changes too); metadata is revalidated sooner.
CHUNK_CACHE_CONTROL = "max-age=86400"
DOCUMENT_CACHE_CONTROL = "max-age=60"
PREFLIGHT_MAX_AGE_S = 86400
# What browsers let a page read of a response (range reads need Content-Range and Content-Length).
EXPOSED_HEADERS = "Content-Range, Content-Length, Content-Encoding, ETag, Accept-Ranges"
TOKEN_COOKIE = "zarrfs_token"


@dataclass
class Reply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: FileBytes = b""


@dataclass(frozen=True)
class Access:
    """Who may read, and from which web origins."""

    cors_origin: str = "*"
    token: str | None = None


def _error(status: int, message: str) -> Reply:
    """A one-line plain-text answer, never cached."""
    body = (printable(message).replace("\n", " ") + "\n").encode()
    return Reply(status, {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store"}, body)


class Site:
    """The HTTP view of one served dataset."""

    def __init__(
        self,
        files: ServedFiles,
        policy: RequestPolicy,
        page: Page,
        identity: str,
        mtime: float,
        access: Access,
    ) -> None:
        self.files = files
        self.policy = policy
        self.identity = identity
        self.last_modified = email.utils.formatdate(mtime, usegmt=True)
        self.access = access
        self.index = page
        self._cors = {
            "Access-Control-Allow-Origin": access.cors_origin,
            "Access-Control-Expose-Headers": EXPOSED_HEADERS,
        }

    async def respond(self, method: str, target: str, headers: Mapping[str, str]) -> Reply:
        reply = await self._respond(method, target, headers)
        reply.headers.update(self._cors)
        if self.access.cors_origin != "*":  # an answer for one origin: caches must keep it apart
            reply.headers["Vary"] = ", ".join(filter(None, (reply.headers.get("Vary"), "Origin")))
        if method == "HEAD":
            reply.body = b""
        elif "Content-Length" not in reply.headers and reply.status not in (204, 304):
            reply.headers["Content-Length"] = str(len(reply.body))
        return reply

    async def _respond(self, method: str, target: str, headers: Mapping[str, str]) -> Reply:
        if method == "OPTIONS":  # a CORS preflight: browsers send it without credentials
            return Reply(
                204,
                {
                    "Allow": METHODS,
                    "Access-Control-Allow-Methods": METHODS,
                    "Access-Control-Allow-Headers": "Range, If-None-Match, Authorization",
                    "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE_S),
                },
            )
        if method not in ("GET", "HEAD"):
            reply = _error(405, f"method {method} not allowed: this server is read-only")
            reply.headers["Allow"] = METHODS
            return reply
        path = tree_path(target)
        if path is None:
            return _error(400, "bad request target: not a path inside the served tree")
        if not self._authorized(target, headers):
            return _error(401, "a token is required: add ?token=... to the URL (as printed by zarrfs serve)")
        if path == "":
            return self._index(target, headers)
        return await self._file(method, path, headers)

    def _authorized(self, target: str, headers: Mapping[str, str]) -> bool:
        expected = self.access.token
        if expected is None:
            return True
        scheme, _, credential = headers.get("Authorization", "").partition(" ")
        offered = [
            query_value(target, "token") or "",
            credential if scheme.lower() in ("token", "bearer") else "",
        ]
        for cookie in headers.get("Cookie", "").split(";"):
            name, _, value = cookie.strip().partition("=")
            if name == TOKEN_COOKIE:
                offered.append(value)
        return any(hmac.compare_digest(value.encode(), expected.encode()) for value in offered if value)

    def _index(self, target: str, headers: Mapping[str, str]) -> Reply:
        base = f"http://{headers.get('Host', 'localhost')}/"
        if accepts(headers.get("Accept"), "text/html"):
            reply = Reply(200, {"Content-Type": "text/html; charset=utf-8"}, self.index.html(base))
        else:
            reply = Reply(200, {"Content-Type": "application/json"}, self.index.json(base))
        reply.headers["Cache-Control"] = "no-store"
        token = query_value(target, "token")
        if self.access.token is not None and token is not None:
            # Later requests of this browser (the page's links) carry the token without the query.
            reply.headers["Set-Cookie"] = f"{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"
        return reply

    async def _file(self, method: str, path: str, headers: Mapping[str, str]) -> Reply:
        document = self.files.is_document(path)
        byte_range = parse_range(headers.get("Range"))
        gzipped = document and byte_range is None and accepts(headers.get("Accept-Encoding"), "gzip")
        try:
            served = await self.policy.answer_async(self.files.identity, path)
        except RequestTimeout as error:
            log.error("%s", error)
            return _error(504, str(error))
        tag = etag(self.identity + (f"\0{served}" if served else ""), path, "gzip" if gzipped else "")
        validators = {
            "ETag": tag,
            "Last-Modified": self.last_modified,
            "Cache-Control": DOCUMENT_CACHE_CONTROL if document else CHUNK_CACHE_CONTROL,
            "Accept-Ranges": "bytes",
        }
        if document:
            validators["Vary"] = "Accept-Encoding"
        if_none_match = headers.get("If-None-Match")
        # Only a file that exists is "not modified": ask for its size, which never makes a chunk's bytes.
        modified = if_none_match is None or not matches_any(tag, if_none_match)
        try:
            size, (start, stop), data = await self.policy.answer_async(
                self.files.fetch, path, byte_range, modified and (method == "GET" or gzipped)
            )
        except (FileNotFoundError, IsADirectoryError):
            return _error(404, f"not found: /{path}")
        except RangeNotSatisfiable as error:
            reply = _error(416, f"range not satisfiable: /{path} has {error.size} bytes")
            reply.headers["Content-Range"] = f"bytes */{error.size}"
            return reply
        except RequestTimeout as error:
            log.error("%s", error)
            return _error(504, str(error))
        except OSError as error:  # the source failed (ChunkReadError) or changed: this file only
            log.error("/%s: %s", path, error)
            return _error(_status_of_failure(error), f"cannot serve /{path}: {error}")
        if not modified:
            return Reply(304, validators)
        reply = Reply(200, {**validators, "Content-Type": _content_type(path, document)}, data)
        if gzipped:
            reply.body = _gzip(bytes(data))
            reply.headers["Content-Encoding"] = "gzip"
            length = len(reply.body)
        elif byte_range is not None:
            reply.status = 206
            reply.headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
            length = stop - start
        else:
            length = size
        reply.headers["Content-Length"] = str(length)
        return reply


def _status_of_failure(error: BaseException) -> int:
    """500 for this server's own failure; a gateway's status where a remote source's server failed the read
    (or answered for a changed object): 502, or 504 where it gave no answer within the time limit."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        link = pending.pop()
        if link is None or id(link) in seen:
            continue
        if isinstance(link, RemoteError):
            return 504 if isinstance(link, RemoteDeadline) else 502
        seen.add(id(link))
        pending += [link.__cause__, link.__context__]
    return 500


def _content_type(path: str, document: bool) -> str:
    if not document:
        return "application/octet-stream"
    # The one document that is not JSON: the OME-XML of a collection of series (OME/METADATA.ome.xml).
    return "application/xml" if path.endswith(".xml") else "application/json"


@functools.lru_cache(maxsize=1024)
def _gzip(document: bytes) -> bytes:
    """Documents are few and small: each is compressed once."""
    return gzip.compress(document, compresslevel=6, mtime=0)
