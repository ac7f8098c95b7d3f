"""Several images of one source (the series of a multi-series TIFF, the images of an HDF5 file) served in the
bioformats2raw layout (layout 3): each series is the OME-Zarr image serving it alone gives (a Dataset's
tree), at ``0/``, ``1/``, ...; the root group names the layout, the ``OME`` group lists the series and holds
the source's OME-XML as ``OME/METADATA.ome.xml`` when it has one; the root's consolidated metadata covers
every series.

The series share the ``--cache-size`` budget by dividing it equally: each series' caches (and, with them,
its default chunk sizes) are those of serving it alone with its share.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass

from zarrfs.core.dataset import Dataset, open_dataset
from zarrfs.core.formats import FORMATS, Document, json_bytes
from zarrfs.core.options import ServeOptions
from zarrfs.core.tree import Entry, FileBytes, VirtualTree, split_path
from zarrfs.sources import Location, SeriesListing
from zarrfs.sources.identity import FileIdentity

OME_GROUP = "OME"
OME_XML = f"{OME_GROUP}/METADATA.ome.xml"


class SeriesTree:
    """The collection's own documents, and each series' tree under its path; in the calling convention of
    ``VirtualTree`` (``blocking``, WouldBlock), whose errors each series' tree raises itself."""

    def __init__(self, documents: dict[str, bytes], series: dict[str, VirtualTree]) -> None:
        self._own = VirtualTree(documents, {})
        self._series = series
        self._root = sorted({*self._own.listdir(""), *series})

    def _route(self, path: str) -> tuple[VirtualTree, str]:
        """The tree ``path`` lies in and the path inside it."""
        parts = split_path(path)
        inner = self._series.get(parts[0]) if parts else None
        if inner is None:
            return self._own, "/".join(parts)
        return inner, "/".join(parts[1:])

    def stat(self, path: str, blocking: bool = True) -> Entry | None:
        tree, inner = self._route(path)
        return tree.stat(inner, blocking)

    def is_document(self, path: str) -> bool:
        tree, inner = self._route(path)
        return tree.is_document(inner)

    def computed_depth(self, path: str) -> int:
        tree, inner = self._route(path)
        return tree.computed_depth(inner)

    def listdir(self, path: str, start: int = 0, blocking: bool = True) -> Iterator[str]:
        if not split_path(path):
            return iter(self._root[start:])
        tree, inner = self._route(path)
        return tree.listdir(inner, start, blocking)

    def read(self, path: str, offset: int, size: int, blocking: bool = True) -> FileBytes:
        tree, inner = self._route(path)
        return tree.read(inner, offset, size, blocking)

    def read_file(self, path: str, blocking: bool = True) -> FileBytes:
        tree, inner = self._route(path)
        return tree.read_file(inner, blocking)


@dataclass
class SeriesCollection:
    """Every series of one source, served together; owns their Datasets."""

    path: str  # what the user named
    names: tuple[str, ...]  # the source's name of each series, for logs and ``zarrfs info``
    datasets: list[Dataset]  # series i is served at str(i)
    tree: SeriesTree

    @property
    def description(self) -> str:
        first = self.datasets[0].description
        return f"{len(self.datasets)} series in the bioformats2raw layout, the first: {first}"

    def files(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(path for dataset in self.datasets for path in dataset.files()))

    def close(self) -> None:
        for dataset in self.datasets:
            dataset.close()


def _documents(listing: SeriesListing, datasets: list[Dataset], options: ServeOptions) -> dict[str, bytes]:
    """The layout's documents of every served NGFF version, with consolidated metadata of the whole tree."""
    paths = [str(index) for index in range(len(datasets))]
    images = [
        {path: json.loads(document) for path, document in dataset.tree.documents.items()}
        for dataset in datasets
    ]
    documents: dict[str, bytes] = {}
    for ngff in options.ngff:
        fmt = FORMATS[ngff]
        hierarchy: dict[str, Document] = fmt.collection_documents(paths)
        for path, image in zip(paths, images, strict=True):
            hierarchy.update(fmt.nested(path, image))
        for path, document in fmt.consolidated(hierarchy).items():
            if split_path(path)[0] not in paths:  # the series' own documents are their trees'
                documents[path] = json_bytes(document)
    if listing.ome_xml is not None:
        documents[OME_XML] = listing.ome_xml.encode()
    return documents


def open_collection(
    location: Location, listing: SeriesListing, options: ServeOptions, known: dict[str, FileIdentity]
) -> SeriesCollection:
    """Open every series of ``listing`` (``known``: the source's files as they were before it was listed,
    so that a change since shows at the first check of every series)."""
    count = len(listing.names)
    share = dataclasses.replace(options, cache_bytes=options.cache_bytes // count)
    datasets: list[Dataset] = []
    try:
        for index in range(count):
            chosen = dataclasses.replace(share, source={**options.source, "series": index})
            datasets.append(open_dataset(location, chosen, known=known))
        trees = {str(index): dataset.tree for index, dataset in enumerate(datasets)}
        tree = SeriesTree(_documents(listing, datasets, options), trees)
    except BaseException:
        for dataset in datasets:
            dataset.close()
        raise
    return SeriesCollection(location.named, listing.names, datasets, tree)
