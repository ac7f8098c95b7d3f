"""One class per served NGFF version and its Zarr format: documents, chunk keys, codecs, sharding.

Adding a version (NGFF 0.6, say) means adding one class here and listing it in FORMATS; nothing else in
zarrfs compares version strings or Zarr format numbers.
"""

from __future__ import annotations

import json
import posixpath
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from zarrfs.core.codecs import (
    Compressor,
    Encoding,
    blosc_config,
    blosc_encoding,
    gzip_encoding,
    numcodecs_encoding,
    raw_encoding,
)
from zarrfs.core.ngff import Levels, group_attributes, multiscales_metadata, omero_metadata
from zarrfs.sources import CodecConfig, NativeBlocks, SourceInfo

if TYPE_CHECKING:
    from zarrfs.core.array import VirtualArray
    from zarrfs.core.sharding import ShardedArray
    from zarrfs.core.windows import Window

Document = dict[str, Any]


def json_bytes(document: Document) -> bytes:
    return (json.dumps(document, indent=2) + "\n").encode()


def json_fill_value(array: VirtualArray) -> int | float | bool | list[float]:
    """The array's fill value as JSON: complex values, which JSON lacks, as ``[real, imaginary]`` (the form
    Zarr v3 specifies and zarr-python and tensorstore read in Zarr v2 metadata too)."""
    value = array.level.fill_value
    return [value.real, value.imag] if isinstance(value, complex) else value


class NgffFormat(ABC):
    """How one NGFF version is laid out on its Zarr format."""

    version: ClassVar[str]  # the NGFF version, as --ngff takes it
    zarr_format: ClassVar[int]
    chunk_prefix: ClassVar[str]  # key part between an array's directory and its chunk indices ("" for none)
    supports_sharding: ClassVar[bool]
    summary: ClassVar[str]  # one line for `zarrfs info`
    # Stored blocks' codec ids whose byte stream this format's codec metadata can name.
    passthrough_codecs: ClassVar[frozenset[str]]
    # Whether its array metadata can name the numcodecs filters stored blocks need before the codec (Zarr
    # v2's "filters"; Zarr v3's standard codecs have no shuffle).
    passthrough_filters: ClassVar[bool]

    @abstractmethod
    def group_documents(
        self, info: SourceInfo, levels: Levels, name: str, method: str | None, windows: Sequence[Window]
    ) -> dict[str, Document]:
        """The image group's documents by file name (relative to the group); ``windows`` are the channels'
        display windows."""

    @abstractmethod
    def array_documents(
        self, array: VirtualArray, axes: str, shards: ShardedArray | None
    ) -> dict[str, Document]:
        """One level's array documents by file name (relative to the array's directory)."""

    @abstractmethod
    def encoding(self, compressor: Compressor, dtype: np.dtype) -> Encoding:
        """How chunks are encoded for ``compressor``, with the codec metadata this format writes."""

    @abstractmethod
    def consolidated(self, documents: dict[str, Document]) -> dict[str, Document]:
        """``documents`` (this format's, by path in the image) with the consolidated metadata added, so that
        clients that cannot list (HTTP) open the whole image from one document."""

    @abstractmethod
    def collection_documents(self, series: Sequence[str]) -> dict[str, Document]:
        """The documents of the bioformats2raw layout (layout 3) around images at the paths ``series``: the
        root group naming the layout, and the ``OME`` group listing the series (the consolidated metadata is
        added by ``consolidated``)."""

    @abstractmethod
    def nested(self, prefix: str, documents: dict[str, Document]) -> dict[str, Document]:
        """An image's documents (this format's, by path in the image, as ``consolidated`` returned them) as
        those of a node at ``prefix`` of a larger hierarchy, for the consolidated metadata of its root: the
        nodes' metadata, without the image's own consolidated metadata."""

    def serves_stored(self, blocks: NativeBlocks, compressor: Compressor) -> bool:
        """Whether stored blocks are exactly what ``compressor`` serves here, so they can pass through: the
        same codec with the same parameters as the served metadata states them, except a compression level
        (zlib, zstd and gzip decoders read a stream of any level; blosc's ``clevel``, shuffle and block size
        are stated in its metadata and must be the stored ones)."""
        if blocks.filters and not self.passthrough_filters:
            return False
        if blocks.codec_id not in self.passthrough_codecs:
            return False
        return _same_stream(blocks.codec, self.stream_codec(compressor))

    def stream_codec(self, compressor: Compressor) -> CodecConfig | None:
        """The numcodecs configuration of the byte stream ``compressor`` serves in this format (None: raw);
        blosc's type size is the served item size."""
        name, level = compressor.name, compressor.level
        if name == "none":
            return None
        if name.startswith("blosc-"):
            return blosc_config(name, level)
        return {"id": name, "level": level}


class NgffV04(NgffFormat):
    """NGFF 0.4 on Zarr v2: ``.zgroup``, ``.zattrs``, ``<level>/.zarray``, chunks ``<level>/<i>/<j>/...``."""

    version = "0.4"
    zarr_format = 2
    chunk_prefix = ""
    supports_sharding = False
    summary = "NGFF 0.4 on Zarr v2: .zgroup, .zattrs, <level>/.zarray, chunks <level>/<i>/<j>/..."
    passthrough_codecs = frozenset({"none", "zlib", "zstd", "blosc"})
    passthrough_filters = True

    def group_documents(
        self, info: SourceInfo, levels: Levels, name: str, method: str | None, windows: Sequence[Window]
    ) -> dict[str, Document]:
        multiscales = {"version": self.version, **multiscales_metadata(info, levels, name, method)}
        omero = {"version": self.version, **omero_metadata(info, name, windows)}
        attributes = group_attributes(info, {"multiscales": [multiscales], "omero": omero})
        return {".zgroup": {"zarr_format": 2}, ".zattrs": attributes}

    def array_documents(
        self, array: VirtualArray, axes: str, shards: ShardedArray | None
    ) -> dict[str, Document]:
        zarray = {
            "zarr_format": 2,
            "shape": list(array.shape),
            "chunks": list(array.chunks),
            "dtype": array.dtype.str,
            "compressor": array.encoding.metadata,
            "fill_value": json_fill_value(array),
            "order": "C",
            "filters": [dict(config) for config in array.filters] or None,
            "dimension_separator": "/",
        }
        return {".zarray": zarray}

    def collection_documents(self, series: Sequence[str]) -> dict[str, Document]:
        group = {"zarr_format": 2}
        return {
            ".zgroup": group,
            ".zattrs": {"bioformats2raw.layout": 3},
            "OME/.zgroup": group,
            "OME/.zattrs": {"series": list(series)},
        }

    def nested(self, prefix: str, documents: dict[str, Document]) -> dict[str, Document]:
        return {
            f"{prefix}/{path}": document
            for path, document in documents.items()
            if posixpath.basename(path) in (".zgroup", ".zattrs", ".zarray")
        }

    def consolidated(self, documents: dict[str, Document]) -> dict[str, Document]:
        # zarr-python's .zmetadata: every document by its key, as zarr.open_consolidated reads it.
        metadata = dict(sorted(documents.items()))
        return {**documents, ".zmetadata": {"zarr_consolidated_format": 1, "metadata": metadata}}

    def encoding(self, compressor: Compressor, dtype: np.dtype) -> Encoding:
        name, level = compressor.name, compressor.level
        if name == "none":
            return raw_encoding()
        assert level is not None
        if name.startswith("blosc-"):
            return blosc_encoding(name, level)
        # zstd and zlib: numcodecs configs with only the keys that differ from the defaults (some readers
        # refuse default-valued keys).
        return numcodecs_encoding(name, {"id": name, "level": level})


class NgffV05(NgffFormat):
    """NGFF 0.5 on Zarr v3: ``zarr.json``, ``<level>/zarr.json``, chunks ``<level>/c/<i>/<j>/...``."""

    version = "0.5"
    zarr_format = 3
    chunk_prefix = "c"
    supports_sharding = True
    summary = "NGFF 0.5 on Zarr v3: zarr.json, <level>/zarr.json, chunks <level>/c/<i>/<j>/..."
    passthrough_codecs = frozenset({"none", "zstd", "gzip", "blosc"})  # v3 has no zlib codec
    passthrough_filters = False

    def group_documents(
        self, info: SourceInfo, levels: Levels, name: str, method: str | None, windows: Sequence[Window]
    ) -> dict[str, Document]:
        ome = {
            "version": self.version,
            "multiscales": [multiscales_metadata(info, levels, name, method)],
            "omero": omero_metadata(info, name, windows),
        }
        attributes = group_attributes(info, {"ome": ome})
        return {"zarr.json": {"zarr_format": 3, "node_type": "group", "attributes": attributes}}

    def array_documents(
        self, array: VirtualArray, axes: str, shards: ShardedArray | None
    ) -> dict[str, Document]:
        dtype = array.dtype
        codecs: list[Document] = [{"name": "bytes", "configuration": {"endian": "little"}}]
        if array.encoding.metadata is not None:
            codecs.append(array.encoding.metadata)
        grid_shape = array.chunks
        if shards is not None:
            grid_shape = shards.shard_shape
            index_codecs = [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}]
            sharding = {"chunk_shape": list(array.chunks), "codecs": codecs, "index_codecs": index_codecs}
            codecs = [{"name": "sharding_indexed", "configuration": {**sharding, "index_location": "end"}}]
        document = {
            "zarr_format": 3,
            "node_type": "array",
            "shape": list(array.shape),
            "data_type": "bool" if dtype.kind == "b" else dtype.name,
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(grid_shape)}},
            "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
            "fill_value": json_fill_value(array),
            "codecs": codecs,
            "attributes": {},
            "dimension_names": list(axes),
        }
        return {"zarr.json": document}

    def collection_documents(self, series: Sequence[str]) -> dict[str, Document]:
        def group(attributes: Document) -> Document:
            return {"zarr_format": 3, "node_type": "group", "attributes": {"ome": attributes}}

        return {
            "zarr.json": group({"version": self.version, "bioformats2raw.layout": 3}),
            "OME/zarr.json": group({"version": self.version, "series": list(series)}),
        }

    def nested(self, prefix: str, documents: dict[str, Document]) -> dict[str, Document]:
        nodes = {
            f"{prefix}/{path}": document
            for path, document in documents.items()
            if posixpath.basename(path) == "zarr.json"
        }
        root = f"{prefix}/zarr.json"
        nodes[root] = {key: value for key, value in nodes[root].items() if key != "consolidated_metadata"}
        return nodes

    def consolidated(self, documents: dict[str, Document]) -> dict[str, Document]:
        # The root zarr.json carries every other node's zarr.json inline, keyed by the node's path (as
        # zarr-python writes and reads consolidated metadata for Zarr v3).
        nodes = {
            path.removesuffix("/zarr.json"): document
            for path, document in sorted(documents.items())
            if path != "zarr.json" and path.endswith("/zarr.json")
        }
        consolidated = {"kind": "inline", "must_understand": False, "metadata": nodes}
        return {**documents, "zarr.json": {**documents["zarr.json"], "consolidated_metadata": consolidated}}

    def encoding(self, compressor: Compressor, dtype: np.dtype) -> Encoding:
        name, level = compressor.name, compressor.level
        if name == "none":
            return raw_encoding()
        assert level is not None
        if name.startswith("blosc-"):
            encoding = blosc_encoding(name, level)
            cname = name.removeprefix("blosc-")
            # The v3 spec wants every key spelled out.
            configuration = {
                "cname": cname,
                "clevel": level,
                "shuffle": "shuffle",
                "typesize": dtype.itemsize,
                "blocksize": 0,
            }
            return encoding.described_as({"name": "blosc", "configuration": configuration})
        if name == "zstd":
            encoding = numcodecs_encoding(name, {"id": "zstd", "level": level})
            return encoding.described_as(
                {"name": "zstd", "configuration": {"level": level, "checksum": False}}
            )
        return gzip_encoding(level)  # zlib is served as gzip: v3 has no zlib codec

    def stream_codec(self, compressor: Compressor) -> CodecConfig | None:
        if compressor.name == "zlib":
            return {"id": "gzip", "level": compressor.level}  # as encoding() serves it
        return super().stream_codec(compressor)


def _same_stream(stored: CodecConfig | None, served: CodecConfig | None) -> bool:
    """``stored`` and ``served`` name the same codec with the same parameters (numcodecs' defaults filled
    in), the compression level of zlib, zstd and gzip aside."""
    if stored is None or served is None:
        return stored is None and served is None
    import numcodecs

    try:
        stored_config = numcodecs.get_codec(dict(stored)).get_config()
    except (ValueError, TypeError):  # a codec or parameter numcodecs does not know: nothing to compare
        return False
    served_config = numcodecs.get_codec(dict(served)).get_config()
    stored_config.pop("level", None)
    served_config.pop("level", None)
    return bool(stored_config == served_config)


FORMATS: dict[str, NgffFormat] = {fmt.version: fmt for fmt in (NgffV04(), NgffV05())}
NGFF_VERSIONS = tuple(FORMATS)
