"""What one source is served as: one OME-Zarr image (a Dataset), or the series of a multi-series source in
the bioformats2raw layout (a SeriesCollection); every front end opens it here."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Protocol

from zarrfs.core.collection import SeriesCollection, open_collection
from zarrfs.core.dataset import Dataset, block_cache_bytes, identity_before, serve_source
from zarrfs.core.options import ServeOptions
from zarrfs.core.tree import Tree
from zarrfs.sources import open_source
from zarrfs.sources.registry import locate


class Served(Protocol):
    """What front ends need of a served source, whichever it is."""

    @property
    def tree(self) -> Tree: ...

    @property
    def path(self) -> str:
        """What the user named, for messages."""

    @property
    def description(self) -> str:
        """One line for the log."""

    def files(self) -> tuple[str, ...]:
        """Every file read, as absolute paths (HTTP names their identities in its ETags)."""

    def close(self) -> None: ...


def open_served(
    source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], options: ServeOptions | None = None
) -> Dataset | SeriesCollection:
    """Open ``source``: the bioformats2raw layout of its series when it holds several and the reader's
    options pick none of them (``--series``, ``--dataset``), else the one image as a Dataset."""
    options = options or ServeOptions()
    before = identity_before(source)
    location = locate(source, options.source)
    opened = open_source(location, options.source, block_cache_bytes(options.cache_bytes))
    listing = opened.series()
    if listing is None:
        return serve_source(opened, options, before)
    opened.close()  # opened again with its share of the cache, beside the others
    return open_collection(location, listing, options, before)


def served_images(served: Dataset | SeriesCollection) -> list[Dataset]:
    """The images ``served`` consists of: the one Dataset, or every series."""
    return served.datasets if isinstance(served, SeriesCollection) else [served]
