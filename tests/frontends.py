"""One way for tests to reach a source through each front end (a real FUSE mount, the in-process store, a real
``zarrfs serve`` on 127.0.0.1), so that one test covers all of them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zarr
from http_serving import serving
from mounting import mounted

import zarrfs

FRONT_ENDS = ("mount", "store", "http")


@dataclass
class Served:
    """The served hierarchy as zarr-python opens it, and how tensorstore reaches it (None: it cannot)."""

    store: Any  # a path, a URL or a zarr store
    tensorstore_kvstore: dict[str, Any] | None

    def group(self, zarr_format: int = 2) -> zarr.Group:
        return zarr.open_group(self.store, mode="r", zarr_format=zarr_format)

    def tensorstore_spec(self, array: str, driver: str = "zarr") -> dict[str, Any] | None:
        if self.tensorstore_kvstore is None:
            return None
        kvstore = dict(self.tensorstore_kvstore)
        kvstore["path"] = f"{kvstore['path'].rstrip('/')}/{array}"
        return {"driver": driver, "kvstore": kvstore}


def _keywords(options: tuple[str, ...]) -> dict[str, str]:
    """Command-line options (``--levels 3``) as ``open_store`` keywords."""
    names, values = options[::2], options[1::2]
    return {
        name.removeprefix("--").replace("-", "_"): value for name, value in zip(names, values, strict=True)
    }


@contextlib.contextmanager
def serve(front_end: str, source: Path, workdir: Path, *options: str) -> Iterator[Served]:
    """``source`` served by ``front_end`` with command-line ``options`` (pairs of ``--name value``)."""
    if front_end == "mount":
        with mounted(source, workdir / "mnt", *options) as mountpoint:
            yield Served(mountpoint, {"driver": "file", "path": str(mountpoint)})
    elif front_end == "store":
        keywords: dict[str, Any] = _keywords(options)
        for name in ("series", "levels"):
            if name in keywords:
                keywords[name] = int(keywords[name])
        store = zarrfs.open_store(str(source), **keywords)  # a str: a glob pattern stays one
        try:
            yield Served(store, None)
        finally:
            store.close()
    elif front_end == "http":  # zarr-python reads the URL through fsspec, tensorstore its http kvstore
        with serving(source, *options) as server:
            base = f"http://{server.host}:{server.port}"
            yield Served(base, {"driver": "http", "base_url": base, "path": ""})
    else:
        raise ValueError(f"unknown front end {front_end!r}")
