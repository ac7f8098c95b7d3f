"""The fsspec file system for a URL, configured from the protocol's standard environment and the options.

Credentials come from where each protocol's own library looks (for S3: the AWS variables, profiles and
instance roles botocore reads); ``AWS_ENDPOINT_URL`` points S3 at an S3-compatible store. fsspec caches file
system instances by their arguments, so every source with the same options shares one client and its
connection pool.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import fsspec
from fsspec.spec import AbstractFileSystem

from zarrfs.errors import SourceError
from zarrfs.sources.remote.options import RemoteOptions
from zarrfs.sources.remote.retry import S3_CONFIG_WITHOUT_RETRIES
from zarrfs.sources.remote.urls import protocol, redact

# Their debug output repeats URLs with signatures, and request headers with credentials.
for _name in ("fsspec", "s3fs", "botocore", "aiobotocore", "aiohttp", "urllib3"):
    logging.getLogger(_name).setLevel(logging.WARNING)

_S3 = ("s3", "s3a")


def _protocol_options(scheme: str, options: RemoteOptions) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if scheme in _S3:
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            # aiobotocore does not read it itself in every version: given explicitly, it always applies.
            kwargs["endpoint_url"] = endpoint
    if options.anon:
        kwargs["anon"] = True
    kwargs.update(options.storage_options())
    if scheme in _S3:
        # Retries are zarrfs's own, within the request's time limit (retry.py): botocore's would add theirs.
        kwargs["config_kwargs"] = {**kwargs.get("config_kwargs", {}), **S3_CONFIG_WITHOUT_RETRIES}
    return kwargs


def remote_filesystem(url: str, options: RemoteOptions | None = None) -> tuple[AbstractFileSystem, str]:
    """The file system that reads ``url`` and the object's path in it; a one-line SourceError for a protocol
    without its package or options it refuses."""
    options = options or RemoteOptions()
    scheme = protocol(url)
    try:
        cls = fsspec.get_filesystem_class(scheme)
    except (ImportError, ValueError) as error:
        raise SourceError(f"cannot read {scheme}:// URLs ({_why(error)}): {redact(url)}") from None
    try:
        fs = cls(**_protocol_options(scheme, options))
    except TypeError as error:
        raise SourceError(
            f"a storage option does not apply to {scheme}:// ({error}): {redact(url)}"
        ) from None
    if scheme in _S3:
        fs.retries = 1  # s3fs's own retry loop: one attempt (an attribute, not an argument)
    return fs, fs._strip_protocol(url) if scheme not in ("http", "https") else url


def _why(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
