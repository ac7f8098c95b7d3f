"""Unit strings found in OME-XML and ImageJ metadata, translated to the UDUNITS-2 names OME-NGFF accepts.

OME-NGFF only allows a fixed list of unit names per axis type. Anything not recognised maps to None rather
than to a guess: a missing unit is harmless, a wrong one silently rescales the data.
"""

from __future__ import annotations

import re
from typing import Literal

UnitKind = Literal["space", "time"]

# SI prefixes NGFF spells out; its unit lists contain exactly these prefixes (no deca-).
_PREFIXES: dict[str, str] = {
    "Y": "yotta",
    "Z": "zetta",
    "E": "exa",
    "P": "peta",
    "T": "tera",
    "G": "giga",
    "M": "mega",
    "k": "kilo",
    "h": "hecto",
    "": "",
    "d": "deci",
    "c": "centi",
    "m": "milli",
    "µ": "micro",
    "n": "nano",
    "p": "pico",
    "f": "femto",
    "a": "atto",
    "z": "zepto",
    "y": "yocto",
}

# NGFF's unit lists are exactly the prefixed meters and seconds plus these.
_EXTRA_SPACE_NAMES = ("angstrom", "foot", "inch", "mile", "parsec", "yard")
_EXTRA_TIME_NAMES = ("day", "hour", "minute")

_VALID_NAMES: dict[UnitKind, frozenset[str]] = {
    "space": frozenset({f"{prefix}meter" for prefix in _PREFIXES.values()} | set(_EXTRA_SPACE_NAMES)),
    "time": frozenset({f"{prefix}second" for prefix in _PREFIXES.values()} | set(_EXTRA_TIME_NAMES)),
}

# Case matters for symbols: "Mm" is megameter, "mm" millimeter.
_SYMBOLS: dict[UnitKind, dict[str, str]] = {
    "space": {
        **{f"{symbol}m": f"{name}meter" for symbol, name in _PREFIXES.items()},
        "Å": "angstrom",
        "in": "inch",
        "ft": "foot",
        "yd": "yard",
        "mi": "mile",
        "pc": "parsec",
    },
    "time": {
        **{f"{symbol}s": f"{name}second" for symbol, name in _PREFIXES.items()},
        "min": "minute",
        "h": "hour",
        "d": "day",
    },
}

# Spellings written by ImageJ, Bio-Formats and hand-edited metadata; matched case-insensitively.
_ALIASES: dict[UnitKind, dict[str, str]] = {
    "space": {
        "um": "micrometer",
        "micron": "micrometer",
        "microns": "micrometer",
        "ang": "angstrom",
        "angstroms": "angstrom",
        "ångström": "angstrom",
        "inches": "inch",
        "feet": "foot",
    },
    "time": {
        "us": "microsecond",
        "usec": "microsecond",
        "msec": "millisecond",
        "sec": "second",
        "secs": "second",
        "mins": "minute",
        "hr": "hour",
        "hrs": "hour",
        "days": "day",
    },
}

# ImageJ escapes non-ASCII characters in its description as \\uXXXX (e.g. "\\u00B5m").
_ESCAPED_CHAR = re.compile(r"\\u([0-9a-fA-F]{4})")


def _normalise(unit: str) -> str:
    unit = _ESCAPED_CHAR.sub(lambda match: chr(int(match.group(1), 16)), unit.strip())
    # Greek small mu (U+03BC) and the micro sign (U+00B5) look identical; both mean micro.
    return unit.replace("\u03bc", "µ")


def _full_name(unit: str, kind: UnitKind) -> str | None:
    """'Micrometres' -> 'micrometer' if that is a valid name of ``kind``."""
    name = unit.lower().replace("metre", "meter")
    for candidate in (name, name.removesuffix("s")):
        if candidate in _VALID_NAMES[kind]:
            return candidate
    return None


def udunits_name(unit: str | None, kind: UnitKind) -> str | None:
    """The UDUNITS-2 name NGFF accepts for ``unit`` on an axis of ``kind``, or None if unknown or not physical
    (e.g. "pixel", or a time unit on a space axis)."""
    if unit is None:
        return None
    unit = _normalise(unit)
    if not unit:
        return None
    if unit in _SYMBOLS[kind]:
        return _SYMBOLS[kind][unit]
    alias = _ALIASES[kind].get(unit.lower())
    if alias is not None:
        return alias
    return _full_name(unit, kind)
