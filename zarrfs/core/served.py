"""What a front end serves, opened here for every front end: one OME-Zarr image (a Dataset); the series of a
multi-series source in the bioformats2raw layout (a SeriesCollection); or, for a directory no reader opens as
one image, a repository of images (zarrfs.core.repository). Each gives a tree in one calling convention
(tree.ServedTree), a path and a description for messages, and close."""

from __future__ import annotations

import os
from collections.abc import Sequence

from zarrfs.core.collection import SeriesCollection, open_collection
from zarrfs.core.dataset import Dataset, block_cache_bytes, identity_before, serve_source
from zarrfs.core.options import ServeOptions
from zarrfs.core.repository import Repository, RepositoryOptions, is_repository
from zarrfs.sources import open_source
from zarrfs.sources.registry import locate

Served = Dataset | SeriesCollection | Repository


def open_served(
    source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    options: ServeOptions | None = None,
    repository: RepositoryOptions | None = None,
) -> Served:
    """Open ``source``: the repository it is (see is_repository); else the bioformats2raw layout of its
    series when it holds several and the reader's options pick none of them (``--series``, ``--dataset``);
    else the one image."""
    options = options or ServeOptions()
    if is_repository(source, options.source, options.remote):
        assert isinstance(source, str | os.PathLike)
        return Repository.open(source, options, repository or RepositoryOptions())
    before = identity_before(source)
    location = locate(source, options.source, options.remote)
    opened = open_source(location, options.source, block_cache_bytes(options.cache_bytes))
    try:
        listing = opened.series()
    except BaseException:
        opened.close()
        raise
    if listing is None:
        return serve_source(opened, options, before)
    opened.close()  # opened again with its share of the cache, beside the others
    return open_collection(location, listing, options, before)


def served_images(served: Dataset | SeriesCollection) -> list[Dataset]:
    """The images ``served`` consists of: the one Dataset, or every series."""
    return served.datasets if isinstance(served, SeriesCollection) else [served]
