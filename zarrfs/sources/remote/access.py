"""Requests for one remote object, per protocol: its identity (a HEAD) and pinned byte ranges.

A pinned range is only ever answered from the object as it was opened: HTTP sends ``If-Match`` with the
ETag (``If-Unmodified-Since`` where the ETag is weak or missing), S3 asks for the opened VersionId or sends
``IfMatch``; every answer's Content-Range total and ETag are checked too, for servers that ignore the
condition. Any other protocol is read unpinned: its changes show at the periodic identity check.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from email.utils import parsedate_to_datetime
from typing import Any

from fsspec.spec import AbstractFileSystem

from zarrfs.errors import one_line
from zarrfs.sources.remote.identity import ObjectChangedError, ObjectIdentity, RemoteError
from zarrfs.sources.remote.transfer import call, loop_of

_STATUS_WORDS = {401: "not authorised", 403: "access denied", 404: "not found", 410: "gone"}


def status_error(status: int, reason: str, name: str) -> RemoteError:
    words = _STATUS_WORDS.get(status, "request failed")
    return RemoteError(f"{words} (HTTP {status} {reason}): {name}".replace("  ", " "), status)


def _mtime_ns(header: str | None) -> int:
    if not header:
        return 0
    try:
        return int(parsedate_to_datetime(header).timestamp() * 1e9)
    except (TypeError, ValueError):
        return 0


async def _first_bytes(stream: Any, length: int) -> bytes:
    """Up to ``length`` bytes from the start of an aiohttp response body (the rest is not read)."""
    pieces: list[bytes] = []
    count = 0
    while count < length:
        piece = await stream.read(length - count)
        if not piece:
            break
        pieces.append(piece)
        count += len(piece)
    return b"".join(pieces)


def _content_range_total(header: str | None) -> tuple[int, int | None]:
    """(first byte, total size) of a ``bytes a-b/total`` header; total None when ``*``."""
    if not header or not header.startswith("bytes "):
        raise ValueError(f"no byte Content-Range ({header!r})")
    span, _, total = header[6:].partition("/")
    return int(span.split("-", 1)[0]), None if total == "*" else int(total)


class ObjectAccess(ABC):
    """One object's requests. ``name`` is its URL as it may be shown."""

    def __init__(self, fs: AbstractFileSystem, path: str, name: str) -> None:
        self.fs = fs
        self.path = path
        self.name = name
        self.loop = loop_of(fs)

    @abstractmethod
    async def head(self) -> ObjectIdentity:
        """The object's identity now; RemoteError saying why when it cannot be had (403, 404, ...)."""

    @abstractmethod
    async def get(self, start: int, stop: int, pinned: ObjectIdentity) -> bytes:
        """Bytes ``start`` to ``stop`` (exclusive) of the object as ``pinned``; ObjectChangedError when the
        object is another one now."""

    async def get_whole(self) -> tuple[ObjectIdentity, bytes]:
        """The object's identity and all its bytes (for small objects read whole: one request where the
        protocol allows)."""
        identity = await self.head()
        return identity, await self.get(0, identity.size, identity) if identity.size else b""

    async def probe(self, length: int) -> tuple[ObjectIdentity, bytes]:
        """The object's identity and its first ``length`` bytes (fewer for a smaller object), unpinned: one
        request where the protocol allows (a repository's listing sniffs each object so)."""
        identity = await self.head()
        stop = min(length, identity.size)
        return identity, await self.get(0, stop, identity) if stop else b""

    def _check_changed(self, pinned: ObjectIdentity, total: int | None, etag: str | None) -> None:
        now = ObjectIdentity(pinned.size if total is None else total, etag or pinned.etag)
        change = ObjectIdentity(pinned.size, pinned.etag).change_to(now)
        if change:
            raise ObjectChangedError(f"{self.name} {change} since it was opened", change)

    def _check_length(self, data: bytes, start: int, stop: int) -> bytes:
        if len(data) != stop - start:
            raise RemoteError(f"short answer: {len(data)} of bytes {start}-{stop - 1}: {self.name}")
        return data


class HttpAccess(ObjectAccess):
    """HTTP(S) through the aiohttp session of fsspec's HTTP file system (its client options apply)."""

    def _request_kwargs(self, headers: dict[str, str]) -> dict[str, Any]:
        kwargs = dict(self.fs.kwargs)
        # Content as stored: a compressed transfer would make byte ranges meaningless.
        kwargs["headers"] = {**kwargs.get("headers", {}), "Accept-Encoding": "identity", **headers}
        return kwargs

    async def head(self) -> ObjectIdentity:
        session = await self.fs.set_session()
        url = self.fs.encode_url(self.path)
        async with session.head(url, allow_redirects=True, **self._request_kwargs({})) as response:
            if response.status >= 400:
                raise status_error(response.status, response.reason or "", self.name)
            length = response.headers.get("Content-Length")
            if length is None:
                raise RemoteError(
                    f"the server does not say the object's size (no Content-Length): {self.name}"
                )
            if response.headers.get("Accept-Ranges", "bytes").lower() == "none":
                raise RemoteError(f"the server does not serve byte ranges (Accept-Ranges: none): {self.name}")
            modified = response.headers.get("Last-Modified")
            return ObjectIdentity(
                int(length), response.headers.get("ETag"), None, _mtime_ns(modified), modified
            )

    async def get_whole(self) -> tuple[ObjectIdentity, bytes]:
        session = await self.fs.set_session()
        async with session.get(self.fs.encode_url(self.path), **self._request_kwargs({})) as response:
            if response.status >= 400:
                raise status_error(response.status, response.reason or "", self.name)
            data = await response.read()
            modified = response.headers.get("Last-Modified")
            identity = ObjectIdentity(
                len(data), response.headers.get("ETag"), None, _mtime_ns(modified), modified
            )
            return identity, data

    async def probe(self, length: int) -> tuple[ObjectIdentity, bytes]:
        session = await self.fs.set_session()
        headers = {"Range": f"bytes=0-{length - 1}"}
        async with session.get(self.fs.encode_url(self.path), **self._request_kwargs(headers)) as response:
            if response.status == 416:  # no byte 0: an empty object
                return ObjectIdentity(0, response.headers.get("ETag")), b""
            if response.status >= 400:
                raise status_error(response.status, response.reason or "", self.name)
            if response.status == 206:
                data = await response.read()
                try:
                    _, total = _content_range_total(response.headers.get("Content-Range"))
                except ValueError as error:
                    raise RemoteError(f"bad range answer ({error}): {self.name}") from None
            else:  # the whole object, from a server that ignores ranges: only its first bytes are read
                data = await _first_bytes(response.content, length)
                total = response.content_length
            if total is None:
                raise RemoteError(f"the server does not say the object's size: {self.name}")
            modified = response.headers.get("Last-Modified")
            etag = response.headers.get("ETag")
            return ObjectIdentity(total, etag, None, _mtime_ns(modified), modified), data[:length]

    async def get(self, start: int, stop: int, pinned: ObjectIdentity) -> bytes:
        headers = {"Range": f"bytes={start}-{stop - 1}"}
        if pinned.etag and not pinned.etag.startswith("W/"):
            headers["If-Match"] = pinned.etag
        elif pinned.last_modified:
            headers["If-Unmodified-Since"] = pinned.last_modified
        session = await self.fs.set_session()
        url = self.fs.encode_url(self.path)
        async with session.get(url, **self._request_kwargs(headers)) as response:
            if response.status == 412:
                raise ObjectChangedError(
                    f"{self.name} changed since it was opened (HTTP 412)", "changed (HTTP 412)", 412
                )
            if response.status >= 400:
                raise status_error(response.status, response.reason or "", self.name)
            etag = response.headers.get("ETag")
            if response.status == 206:
                try:
                    first, total = _content_range_total(response.headers.get("Content-Range"))
                except ValueError as error:
                    raise RemoteError(f"bad range answer ({error}): {self.name}") from None
                self._check_changed(pinned, total, etag)
                if first != start:
                    raise RemoteError(f"the server answered bytes from {first}, not {start}: {self.name}")
            elif start == 0 and stop == pinned.size:  # the whole object, which a 200 is too
                self._check_changed(pinned, response.content_length, etag)
            else:
                raise RemoteError(
                    f"the server ignored the byte range (HTTP {response.status}): {self.name}",
                    response.status,
                )
            return self._check_length(await response.read(), start, stop)


class S3Access(ObjectAccess):
    """S3 (and S3-compatible stores) through s3fs's botocore client."""

    def __init__(self, fs: AbstractFileSystem, path: str, name: str) -> None:
        super().__init__(fs, path, name)
        self.bucket, self.key, self.version = fs.split_path(path)

    async def _call(self, method: str, **kwargs: Any) -> Any:
        try:
            return await self.fs._call_s3(method, Bucket=self.bucket, Key=self.key, **kwargs)
        except FileNotFoundError:
            raise RemoteError(f"not found (S3 NoSuchKey or NoSuchBucket, 404): {self.name}", 404) from None
        except PermissionError:
            raise RemoteError(f"access denied (S3 403): {self.name}", 403) from None
        except OSError as error:
            if _s3_error_code(error) == "PreconditionFailed":
                raise ObjectChangedError(
                    f"{self.name} changed since it was opened (412)", "changed (412)", 412
                ) from None
            raise

    async def head(self) -> ObjectIdentity:
        kwargs = {"VersionId": self.version} if self.version else {}
        return _s3_identity(await self._call("head_object", **kwargs))

    async def probe(self, length: int) -> tuple[ObjectIdentity, bytes]:
        kwargs = {"VersionId": self.version} if self.version else {}
        try:
            answer = await self._call("get_object", Range=f"bytes=0-{length - 1}", **kwargs)
        except OSError as error:
            if _s3_error_code(error) != "InvalidRange":
                raise
            return await self.head(), b""  # no byte 0: an empty object
        data = await _body(answer)
        try:
            _, total = _content_range_total(answer.get("ContentRange"))
        except ValueError:
            total = None
        identity = _s3_identity(answer)
        size = len(data) if total is None else total
        return ObjectIdentity(size, identity.etag, identity.version, identity.mtime_ns), data

    async def get_whole(self) -> tuple[ObjectIdentity, bytes]:
        kwargs = {"VersionId": self.version} if self.version else {}
        answer = await self._call("get_object", **kwargs)
        data = await _body(answer)
        return _s3_identity(answer), data

    async def get(self, start: int, stop: int, pinned: ObjectIdentity) -> bytes:
        pin = (
            {"VersionId": pinned.version}
            if pinned.version
            else {"IfMatch": pinned.etag}
            if pinned.etag
            else {}
        )
        answer = await self._call("get_object", Range=f"bytes={start}-{stop - 1}", **pin)
        data = await _body(answer)
        try:
            _, total = _content_range_total(answer.get("ContentRange"))
        except ValueError:
            total = int(answer.get("ContentLength", -1)) if start == 0 and stop == pinned.size else None
        self._check_changed(pinned, total, answer.get("ETag"))
        return self._check_length(data, start, stop)


async def _body(answer: dict[str, Any]) -> bytes:
    """The body of an S3 GET answer, read whole; its stream closed either way."""
    body = answer["Body"]
    try:
        data: bytes = await body.read()
    finally:
        body.close()
    return data


def _s3_identity(answer: dict[str, Any]) -> ObjectIdentity:
    """The identity a HeadObject or GetObject answer gives."""
    modified = answer.get("LastModified")
    return ObjectIdentity(
        int(answer["ContentLength"]),
        answer.get("ETag"),
        answer.get("VersionId"),
        int(modified.timestamp() * 1e9) if modified is not None else 0,
    )


def _s3_error_code(error: OSError) -> str | None:
    """The S3 error code behind the OSError s3fs made of botocore's error."""
    cause = error.__cause__ or error.__context__
    response = getattr(cause, "response", None)
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    return str(code) if code is not None else None


class FsspecAccess(ObjectAccess):
    """Any other fsspec protocol: its ``info`` for the identity, unpinned ``cat_file`` for ranges."""

    async def head(self) -> ObjectIdentity:
        try:
            info = await call(self.fs, "info", self.path)
        except FileNotFoundError:
            raise RemoteError(f"not found: {self.name}", 404) from None
        except PermissionError:
            raise RemoteError(f"access denied: {self.name}", 403) from None
        if info.get("type") == "directory":
            raise RemoteError(f"is a directory, not an object: {self.name}")
        tag = info.get("ETag") or info.get("etag") or info.get("md5") or info.get("checksum")
        modified = info.get("mtime") or info.get("LastModified") or info.get("last_modified")
        mtime_ns = int(modified.timestamp() * 1e9) if hasattr(modified, "timestamp") else 0
        return ObjectIdentity(int(info["size"]), None if tag is None else str(tag), None, mtime_ns)

    async def get(self, start: int, stop: int, pinned: ObjectIdentity) -> bytes:
        return self._check_length(await call(self.fs, "cat_file", self.path, start, stop), start, stop)


class KnownStart(ObjectAccess):
    """The object of ``inner`` whose first bytes are known already (a probe fetched them): reads within
    them make no request."""

    def __init__(self, inner: ObjectAccess, first: bytes) -> None:
        super().__init__(inner.fs, inner.path, inner.name)
        self.inner = inner
        self.first = first

    async def head(self) -> ObjectIdentity:
        return await self.inner.head()

    async def get(self, start: int, stop: int, pinned: ObjectIdentity) -> bytes:
        if stop <= len(self.first):
            return self.first[start:stop]
        return await self.inner.get(start, stop, pinned)


def access_for(fs: AbstractFileSystem, path: str, name: str) -> ObjectAccess:
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    if {"http", "https"} & set(protocols):
        return HttpAccess(fs, path, name)
    if {"s3", "s3a"} & set(protocols):
        return S3Access(fs, path, name)
    return FsspecAccess(fs, path, name)


def describe_failure(error: BaseException) -> str:
    """A library's error as a short phrase (callers scrub it of secrets)."""
    if isinstance(error, asyncio.TimeoutError | TimeoutError):
        return "timed out"
    return f"{type(error).__name__}: {one_line(error)}"
