"""The file-sequence rule: a ``zarrfs-sequence.json`` in a directory makes the files it matches one image.

    {"pattern": "*.tif", "axis": "z", "name": "volume", "index": "slice_(?P<index>\\d+)"}

``pattern`` (required): a shell pattern the names of the member files match (fnmatch, case-sensitive).
``axis``: the axis they are stacked along, z (default), t or c. ``name``: the served image is
``<name>.ome.zarr`` (default: the directory's name). ``index``: a regular expression whose group ``index``
gives each file's plane number (as ``--sequence-pattern``); without it the files are stacked in natural order
(``s_2`` before ``s_10``). Member files are not shown on their own.
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass
from typing import Any

RULE_FILE = "zarrfs-sequence.json"
RULE_MAX_BYTES = 64 * 1024
AXES = ("z", "t", "c")


class RuleError(ValueError):
    """The rule file cannot be used; its message says why, in one line."""


@dataclass(frozen=True)
class SequenceRule:
    pattern: str
    axis: str = "z"
    name: str | None = None
    index: str | None = None

    def matches(self, name: str) -> bool:
        return fnmatch.fnmatchcase(name, self.pattern)

    def source_options(self) -> dict[str, str]:
        """The sequence reader's options (zarrfs.sources.sequence) for this rule."""
        options = {"sequence_axis": self.axis}
        if self.index is not None:
            options["sequence_pattern"] = self.index
        return options


def _text(document: dict[str, Any], key: str) -> str | None:
    value = document.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        raise RuleError(f"{key!r} must be a non-empty string")
    return value


def read_rule(path: str) -> SequenceRule:
    """The rule in the file at ``path``; RuleError (or OSError) when it cannot be used."""
    with open(path, "rb") as handle:
        data = handle.read(RULE_MAX_BYTES + 1)
    if len(data) > RULE_MAX_BYTES:
        raise RuleError(f"larger than {RULE_MAX_BYTES} bytes")
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise RuleError(f"not JSON: {error}") from None
    if not isinstance(document, dict):
        raise RuleError("not a JSON object")
    unknown = sorted(set(document) - {"pattern", "axis", "name", "index"})
    if unknown:
        raise RuleError(f"unknown keys {unknown} (known: pattern, axis, name, index)")
    pattern = _text(document, "pattern")
    if pattern is None:
        raise RuleError("'pattern' is missing")
    axis = _text(document, "axis") or "z"
    if axis not in AXES:
        raise RuleError(f"'axis' must be one of {', '.join(AXES)}, not {axis!r}")
    name = _text(document, "name")
    if name is not None and ("/" in name or name in (".", "..")):
        raise RuleError(f"'name' must be a plain file name, not {name!r}")
    index = _text(document, "index")
    if index is not None:
        try:
            compiled = re.compile(index)
        except re.error as error:
            raise RuleError(f"'index' is not a regular expression: {error}") from None
        if "index" not in compiled.groupindex:
            raise RuleError("'index' needs a group named index, e.g. slice_(?P<index>\\d+)")
    return SequenceRule(pattern, axis, name, index)
