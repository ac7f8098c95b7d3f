"""The remote-test servers of remote_servers.py (nginx over a directory, moto's S3) for tests that want only
their address: each in a temporary working directory, always stopped."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from remote_servers import moto_s3, nginx


@contextlib.contextmanager
def nginx_server(root: Path | str) -> Iterator[str]:
    """nginx serving the files under ``root`` (byte ranges, ETag, Last-Modified) until the block ends; yields
    its base URL, ``http://127.0.0.1:PORT`` (no trailing slash)."""
    with tempfile.TemporaryDirectory(prefix="zarrfs-nginx-") as work, nginx(Path(root), Path(work)) as server:
        yield server.url


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """A local S3 (moto's server) until the block ends; yields its endpoint URL. Clients need credentials of
    any value (``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY``)."""
    with tempfile.TemporaryDirectory(prefix="zarrfs-moto-") as work, moto_s3(Path(work)) as server:
        yield server.endpoint
