"""Attribute values as the tools that write them store them: strings as str, bytes, or (Imaris) arrays of
single characters; numbers as scalars, arrays, or text."""

from __future__ import annotations

import math

import numpy as np


def text(value: object) -> str | None:
    """A string attribute, or None; an array of strings is joined (single characters without a separator,
    as Imaris stores every attribute, longer items with commas)."""
    if isinstance(value, bytes | np.bytes_):
        return bytes(value).decode(errors="replace")
    if isinstance(value, str):
        return value
    if isinstance(value, np.ndarray) and value.dtype.kind in "SUO":
        parts = [text(item) for item in value.ravel().tolist()]
        if any(part is None for part in parts):
            return None
        strings = [part for part in parts if part is not None]
        return "".join(strings) if all(len(part) == 1 for part in strings) else ",".join(strings)
    return None


def number(value: object) -> float | None:
    """A finite number attribute (the first of an array; text such as Imaris stores is parsed), or None."""
    written = text(value)
    try:
        result = float(written) if written is not None else float(np.asarray(value).ravel()[0])
    except (TypeError, ValueError, IndexError):
        return None
    return result if math.isfinite(result) else None


def positive(value: object) -> float | None:
    result = number(value)
    return result if result is not None and result > 0 else None
