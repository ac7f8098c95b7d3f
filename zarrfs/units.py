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


# Powers of ten of the SI prefixes, by the names NGFF spells out.
_PREFIX_EXPONENTS: dict[str, int] = {
    "yotta": 24, "zetta": 21, "exa": 18, "peta": 15, "tera": 12, "giga": 9, "mega": 6, "kilo": 3, "hecto": 2,
    "": 0, "deci": -1, "centi": -2, "milli": -3, "micro": -6, "nano": -9, "pico": -12, "femto": -15,
    "atto": -18, "zepto": -21, "yocto": -24,
}  # fmt: skip
_OTHER_METERS = {"angstrom": 1e-10, "foot": 0.3048, "inch": 0.0254, "yard": 0.9144, "mile": 1609.344,
                 "parsec": 3.0857e16}  # fmt: skip


def meters(unit: str) -> float | None:
    """How many meters one ``unit`` (a UDUNITS-2 space unit name, as ``udunits_name`` gives) is, or None."""
    if unit in _OTHER_METERS:
        return _OTHER_METERS[unit]
    prefix = unit.removesuffix("meter")
    if prefix == unit or prefix not in _PREFIX_EXPONENTS:
        return None
    return 10.0 ** _PREFIX_EXPONENTS[prefix]
