"""File sequences: many image files (one per section, time point or channel) served as one image stacked along
a new axis. A quoted glob (natural order), a list file or a list of paths names them; each file is read by
whichever reader claims the first one, so sequences compose with every format.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from zarrfs.sources.base import ImageSource
from zarrfs.sources.registry import Location, Reader
from zarrfs.sources.sequence.names import place
from zarrfs.sources.sequence.source import SEQUENCE_AXES, SequenceSource, open_sequence

__all__ = ["SEQUENCE_AXES", "SequenceReader", "SequenceSource"]


class SequenceReader(Reader):
    name: ClassVar[str] = "sequence"
    options: ClassVar[Mapping[str, str]] = {
        "sequence_list": "a file naming the sequence's files, one a line, relative to its directory",
        "sequence_axis": "the axis the files are stacked along: z (default), t or c",
        "sequence_pattern": "a regular expression whose group named index gives each file's plane number",
    }

    def claims(self, location: Location) -> bool:
        return location.is_sequence

    def open(self, location: Location, options: Mapping[str, Any], block_cache_bytes: int) -> ImageSource:
        placement = place(location.paths, options.get("sequence_pattern"))
        return open_sequence(location, options, placement, block_cache_bytes)
