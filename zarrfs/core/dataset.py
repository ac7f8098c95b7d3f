"""A source image served as an OME-NGFF 0.4 image on Zarr v2: the arrays, their metadata and the tree."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from zarrfs.core.array import VirtualArray
from zarrfs.core.chunking import resolve_chunks
from zarrfs.core.codecs import OutputCodec, make_output_codec
from zarrfs.core.ngff import image_attributes
from zarrfs.core.options import ServeOptions
from zarrfs.core.tree import VirtualTree
from zarrfs.lru import ByteLRUCache
from zarrfs.sources import ImageSource, open_source


def block_cache_bytes(cache_bytes: int) -> int:
    """The share of the cache budget a source may use for decoded blocks larger than a chunk (such as one
    huge strip); the rest holds served chunks. Together they stay within ``--cache-size``."""
    return cache_bytes // 4


def _json_bytes(document: dict[str, Any]) -> bytes:
    return (json.dumps(document, indent=2) + "\n").encode()


def zarray_metadata(array: VirtualArray) -> dict[str, Any]:
    """The ``.zarray`` document of a Zarr v2 array with nested ("/") chunk keys."""
    return {
        "zarr_format": 2,
        "shape": list(array.shape),
        "chunks": list(array.chunks),
        "dtype": array.dtype.str,
        "compressor": array.codec.v2_config,
        "fill_value": array.fill_value,
        "order": "C",
        "filters": None,
        "dimension_separator": "/",
    }


@dataclass
class Dataset:
    """Everything served for one source; owns the source and the chunk cache."""

    source: ImageSource
    options: ServeOptions
    codec: OutputCodec
    cache: ByteLRUCache
    arrays: list[VirtualArray]
    tree: VirtualTree
    name: str

    def close(self) -> None:
        self.source.close()


def build_dataset(source: ImageSource, options: ServeOptions) -> Dataset:
    info = source.info
    codec = make_output_codec(options.compressor, options.clevel)
    cache = ByteLRUCache(options.cache_bytes - block_cache_bytes(options.cache_bytes))
    name = os.path.basename(source.path)
    arrays = []
    for level_index, level in enumerate(info.levels):
        chunks = resolve_chunks(info.axes, level, info.dtype.itemsize, options.chunks)
        arrays.append(VirtualArray(str(level_index), source, level_index, chunks, codec, cache))
    documents = {
        ".zgroup": _json_bytes({"zarr_format": 2}),
        ".zattrs": _json_bytes(image_attributes(info, [array.name for array in arrays], name)),
    }
    for array in arrays:
        documents[f"{array.name}/.zarray"] = _json_bytes(zarray_metadata(array))
    tree = VirtualTree(documents, {array.name: array for array in arrays})
    return Dataset(source, options, codec, cache, arrays, tree, name)


def open_dataset(path: str | os.PathLike[str], options: ServeOptions | None = None) -> Dataset:
    """Open ``path`` and build its virtual tree: metadata only, no pixel data is read."""
    options = options or ServeOptions()
    source = open_source(path, options.series, block_cache_bytes(options.cache_bytes))
    try:
        return build_dataset(source, options)
    except BaseException:
        source.close()
        raise
