"""A Zarr or N5 store at a URL: its metadata documents read as watched remote objects, passed-through
chunks with one request each, and tensorstore's own drivers (http, s3, gcs) for everything it reads."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from zarrfs.errors import SourceError
from zarrfs.sources.remote.filesystems import remote_filesystem
from zarrfs.sources.remote.identity import RemoteError
from zarrfs.sources.remote.objects import RemoteObject, fetch_whole, list_directories
from zarrfs.sources.remote.options import RemoteOptions
from zarrfs.sources.remote.urls import protocol, redact
from zarrfs.sources.zarrstore.storage import OversizedFile, StoreFiles


class RemoteFiles(StoreFiles):
    def __init__(self, url: str, options: RemoteOptions) -> None:
        self._url = url.rstrip("/")  # may hold credentials: never shown
        self.options = options
        self.root = redact(self._url)
        self.scheme = protocol(url)
        self._fs, self._path = remote_filesystem(self._url, options)
        # Documents read (kept open: the source's watch checks them), and those found missing.
        self._documents: dict[str, tuple[RemoteObject, bytes] | None] = {}

    def _url_of(self, relative: str) -> str:
        if not relative:
            return self._url
        parts = urlsplit(self._url)
        return urlunsplit(parts._replace(path=f"{parts.path.rstrip('/')}/{relative}"))

    def _path_of(self, relative: str) -> str:
        if self.scheme in ("http", "https"):
            return self._url_of(relative)
        return f"{self._path}/{relative}" if relative else self._path

    def location(self, relative: str) -> str:
        return redact(self._url_of(relative))

    def document(self, relative: str) -> bytes | None:
        """Read with one request and remembered: asked again (claiming the store, then opening it), it costs
        none."""
        if relative not in self._documents:
            try:
                remote, data = RemoteObject.read_whole(self._url_of(relative), self.options)
            except RemoteError as error:
                if error.status != 404:
                    raise
                self._documents[relative] = None
            else:
                self._documents[relative] = (remote, data)
        found = self._documents[relative]
        return None if found is None else found[1]

    def read(self, relative: str, limit: int | None = None) -> bytes | None:
        data = fetch_whole(self._fs, self._path_of(relative), self.location(relative), self.options)
        if data is not None and limit is not None and len(data) > limit:
            raise OversizedFile(len(data))
        return data

    def directories(self, relative: str) -> list[str]:
        return list_directories(self._fs, self._path_of(relative), self.location(relative), self.options)

    def kvstore(self, relative: str) -> dict[str, Any]:
        parts = urlsplit(self._url_of(relative))
        if parts.query or "@" in parts.netloc:
            raise SourceError(
                f"Zarr stores are read by tensorstore, which takes no credentials in the URL: {self.root}"
            )
        path = parts.path.rstrip("/") + "/"
        if self.scheme in ("http", "https"):
            return {"driver": "http", "base_url": f"{parts.scheme}://{parts.netloc}", "path": path}
        if self.scheme in ("s3", "s3a"):
            return self._s3_kvstore(parts.netloc, path.lstrip("/"))
        if self.scheme in ("gs", "gcs"):
            return {"driver": "gcs", "bucket": parts.netloc, "path": path.lstrip("/")}
        raise SourceError(f"Zarr stores at {self.scheme}:// URLs cannot be read (http, https, s3, gs can)")

    def _s3_kvstore(self, bucket: str, path: str) -> dict[str, Any]:
        storage = self.options.storage_options()
        spec: dict[str, Any] = {"driver": "s3", "bucket": bucket, "path": path}
        endpoint = (
            storage.get("endpoint_url")
            or os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL")
        )
        if endpoint:
            spec["endpoint"] = endpoint
            # A custom endpoint has no region to look up; tensorstore needs one to sign requests.
            spec["aws_region"] = (
                os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
            )
        if self.options.anon:
            spec["aws_credentials"] = {"type": "anonymous"}
        return spec
