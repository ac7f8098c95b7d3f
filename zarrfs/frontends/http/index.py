"""The page at ``/``: what is served, its arrays and levels, and source strings to paste into viewers (for a
collection of series, those of each series)."""

from __future__ import annotations

import html
import json
import os
import urllib.parse
from abc import ABC, abstractmethod
from typing import Any

from zarrfs.core.collection import SeriesCollection
from zarrfs.core.dataset import Dataset
from zarrfs.core.repository import Repository

VIZARR = "https://hms-dbmi.github.io/vizarr/?source="


class Page(ABC):
    """The index page of what is served: its description as JSON, or as HTML for a browser."""

    @abstractmethod
    def describe(self, base: str) -> dict[str, Any]:
        """What is served, with URLs under ``base``."""

    def json(self, base: str) -> bytes:
        return (json.dumps(self.describe(base), indent=2) + "\n").encode()

    @abstractmethod
    def html(self, base: str) -> bytes: ...


class Index(Page):
    def __init__(self, dataset: Dataset, precomputed: list[str]) -> None:
        self.dataset = dataset
        self.precomputed = precomputed

    def describe(self, base: str) -> dict[str, Any]:
        """The index as data; ``base`` is the server's URL as the client reached it."""
        info = self.dataset.source.info
        # Neuroglancer's plain zarr:// refuses a directory holding both Zarr v2 and v3 metadata ("Both zarr v2
        # and v3 metadata found"): with both layouts served, each string names its format.
        layouts = self.dataset.layouts
        viewers = {
            f"neuroglancer (NGFF {layout.ngff}, Zarr v{layout.format.zarr_format})": (
                f"zarr{layout.format.zarr_format if len(layouts) > 1 else ''}://{base}"
            )
            for layout in layouts
        }
        for directory in self.precomputed:
            viewers[f"neuroglancer ({directory})"] = f"precomputed://{base}{directory}"
        viewers["vizarr"] = VIZARR + base
        return {
            "source": self.dataset.name,
            "axes": info.axes,
            "dtype": str(info.dtype),
            "layouts": [
                {
                    "ngff": layout.ngff,
                    "zarr_format": layout.format.zarr_format,
                    "arrays": [
                        {"path": array.level.name, "shape": list(array.shape), "chunks": list(array.chunks)}
                        for array in layout.arrays
                    ],
                }
                for layout in self.dataset.layouts
            ],
            "viewers": viewers,
        }

    def html(self, base: str) -> bytes:
        about = self.describe(base)
        rows = "".join(
            f"<tr><td>{layout['ngff']}</td><td>v{layout['zarr_format']}</td><td>{html.escape(array['path'])}"
            f"</td><td>{array['shape']}</td><td>{array['chunks']}</td></tr>"
            for layout in about["layouts"]
            for array in layout["arrays"]
        )
        viewers = "".join(
            f"<tr><td>{html.escape(name)}</td><td><code>{html.escape(source)}</code></td></tr>"
            for name, source in about["viewers"].items()
        )
        page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>zarrfs: {html.escape(about["source"])}</title></head>
<body><h1>{html.escape(about["source"])}</h1>
<p>Served by zarrfs as OME-Zarr: axes {html.escape(about["axes"])}, data type {html.escape(about["dtype"])}.
</p><h2>Arrays</h2><table border="1">
<tr><th>NGFF</th><th>Zarr</th><th>level</th><th>shape</th><th>chunks</th></tr>
{rows}</table>
<h2>Open in a viewer</h2><table border="1"><tr><th>viewer</th><th>source</th></tr>
{viewers}</table></body></html>
"""
        return page.encode()


class RepositoryIndex(Page):
    """The page of a served repository: its top-level entries (images are ``<name>.ome.zarr``) and where its
    statistics are. Neuroglancer precomputed is not served for repository images."""

    def __init__(self, repository: Repository) -> None:
        self.repository = repository

    def describe(self, base: str) -> dict[str, Any]:
        tree = self.repository.tree
        return {
            "source": os.path.basename(self.repository.path),
            "repository": True,
            "entries": list(tree.listdir("")),
            "statistics": f"{base}.zarrfs/stats.json",
        }

    def html(self, base: str) -> bytes:
        about = self.describe(base)
        rows = "".join(
            f'<li><a href="{html.escape(urllib.parse.quote(name))}/">{html.escape(name)}</a></li>'
            for name in about["entries"]
        )
        page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>zarrfs: {html.escape(about["source"])}</title></head>
<body><h1>{html.escape(about["source"])}</h1>
<p>A repository served by zarrfs: each image is an OME-Zarr directory named &lt;name&gt;.ome.zarr.
Statistics: <a href=".zarrfs/stats.json">.zarrfs/stats.json</a>.</p>
<ul>{rows}</ul></body></html>
"""
        return page.encode()


class SeriesIndex(Page):
    """The page of a collection of series: per series its path, name and Index (viewer strings included)."""

    def __init__(self, collection: SeriesCollection) -> None:
        self.collection = collection

    def describe(self, base: str) -> dict[str, Any]:
        series = [
            {"path": str(index), "name": name, **Index(dataset, []).describe(f"{base}{index}/")}
            for index, (name, dataset) in enumerate(
                zip(self.collection.names, self.collection.datasets, strict=True)
            )
        ]
        name = os.path.basename(self.collection.path)
        return {"source": name, "layout": "bioformats2raw", "series": series}

    def html(self, base: str) -> bytes:
        about = self.describe(base)
        rows = "".join(
            f"<tr><td>{html.escape(item['path'])}/</td><td>{html.escape(item['name'])}</td>"
            f"<td>{html.escape(item['axes'])}</td><td>{html.escape(item['dtype'])}</td>"
            f"<td>{item['layouts'][0]['arrays'][0]['shape']}</td>"
            f"<td><code>{html.escape(item['viewers']['vizarr'])}</code></td></tr>"
            for item in about["series"]
        )
        page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>zarrfs: {html.escape(about["source"])}</title></head>
<body><h1>{html.escape(about["source"])}</h1>
<p>Served by zarrfs as OME-Zarr in the bioformats2raw layout: one image per series, at its path.</p>
<table border="1">
<tr><th>path</th><th>series</th><th>axes</th><th>data type</th><th>shape</th><th>vizarr</th></tr>
{rows}</table></body></html>
"""
        return page.encode()


def index_page(served: Dataset | SeriesCollection | Repository, precomputed: list[str]) -> Page:
    """The page for what is served; ``precomputed``: the directories of its precomputed volumes."""
    if isinstance(served, Repository):
        return RepositoryIndex(served)
    if isinstance(served, SeriesCollection):
        return SeriesIndex(served)
    return Index(served, precomputed)
