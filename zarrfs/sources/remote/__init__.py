"""Sources at URLs (``http(s)://``, ``s3://`` and any protocol fsspec has an installed package for).

A remote object is opened once (its size and ETag/version are its identity), then read in aligned blocks
(blocks.py) through pinned range requests (access.py): a request for an object that changed since it was
opened fails instead of returning bytes of the new object. Readers see a ``RemoteFile`` (file.py) with the
positional reads of a local file, and a buffered file object for the libraries that parse headers (tifffile,
h5py).
"""

from __future__ import annotations

from zarrfs.sources.remote.urls import is_url, redact

__all__ = ["is_url", "redact"]
