"""Which files form a sequence, and where each goes: a glob in natural order, a list file, or numbers in the
names (``--sequence-pattern``). Names only: no file is opened here except a list file."""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from zarrfs.errors import SourceError

_GLOB_MAGIC = re.compile(r"[*?[]")
_DIGITS = re.compile(r"(\d+)")


def is_glob(path: str) -> bool:
    """Whether ``path`` is a pattern rather than a name: it has glob characters and names nothing as it is."""
    return _GLOB_MAGIC.search(path) is not None and not os.path.lexists(path)


def natural_key(path: str) -> tuple[str | int, ...]:
    """Sort key where runs of digits compare as numbers: ``slice_2`` before ``slice_10``. (re.split with a
    group alternates text and digits, odd places digits, so keys of any two names compare place by place.)"""
    return tuple(int(part) if place % 2 else part for place, part in enumerate(_DIGITS.split(path)))


def expand_glob(pattern: str) -> tuple[str, ...]:
    """The files ``pattern`` matches (directories left out), absolute, in natural order; a one-line error
    when there are none."""
    matches = [os.path.abspath(path) for path in glob.glob(pattern) if not os.path.isdir(path)]
    if not matches:
        raise SourceError(f"no files match {pattern}")
    return tuple(sorted(matches, key=natural_key))


def read_list(list_file: str) -> tuple[str, ...]:
    """The files a list names, one a line (blank lines skipped), relative to the list's directory, in its
    order; one-line error for a list that cannot be read, is empty or names a file that is not there."""
    try:
        with open(list_file, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        raise SourceError(f"sequence list not found: {list_file}") from None
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        raise SourceError(f"cannot read sequence list {list_file}: {reason}") from None
    base = os.path.dirname(os.path.abspath(list_file))
    paths = []
    for number, line in enumerate(lines, start=1):
        name = line.strip()
        if not name:
            continue
        path = os.path.normpath(os.path.join(base, name))
        if not os.path.isfile(path):
            raise SourceError(f"sequence list {list_file} line {number}: file not found: {path}")
        paths.append(path)
    if not paths:
        raise SourceError(f"sequence list {list_file} names no files")
    return tuple(paths)


def index_pattern(pattern: str) -> re.Pattern[str]:
    """``--sequence-pattern``: a regular expression with a named group ``index`` (digits)."""
    try:
        compiled = re.compile(pattern)
    except re.error as error:
        raise SourceError(f"invalid --sequence-pattern {pattern!r}: {error}") from None
    if "index" not in compiled.groupindex:
        raise SourceError(
            f"--sequence-pattern {pattern!r} has no group named index: write it as (?P<index>\\d+)"
        )
    return compiled


@dataclass(frozen=True)
class Placement:
    """The planes of a sequence: plane i holds the file at ``paths[files[i]]``; a plane not in ``files`` is a
    number no file has (a plane of the fill value). ``first_index`` is the number of plane 0. Kept sparse: a
    gap of a million numbers costs nothing."""

    planes: int
    files: Mapping[int, int]
    first_index: int = 0

    def missing(self) -> str:
        """The numbers no file has, as ranges (``5, 9-12``); "" when none."""
        gaps, expected = [], 0
        for plane in [*sorted(self.files), self.planes]:
            if plane > expected:
                first, last = self.first_index + expected, self.first_index + plane - 1
                gaps.append(str(first) if first == last else f"{first}-{last}")
            expected = plane + 1
        return ", ".join(gaps)


def place(paths: Sequence[str], pattern: str | None) -> Placement:
    """Plane per file: in the given order, or by the number ``pattern`` finds in each file name, from the
    smallest to the largest number found."""
    if pattern is None:
        return Placement(len(paths), {plane: plane for plane in range(len(paths))})
    compiled = index_pattern(pattern)
    numbers: dict[int, int] = {}
    for position, path in enumerate(paths):
        match = compiled.search(os.path.basename(path))
        if match is None or match.group("index") is None:
            raise SourceError(f"file {path} does not match --sequence-pattern {pattern!r}")
        try:
            number = int(match.group("index"))
        except ValueError:
            found = match.group("index")
            raise SourceError(f"--sequence-pattern gives index {found!r} for {path}: not a number") from None
        if number in numbers:
            raise SourceError(f"files {paths[numbers[number]]} and {path} both have index {number}")
        numbers[number] = position
    first = min(numbers)
    return Placement(max(numbers) - first + 1, {number - first: at for number, at in numbers.items()}, first)
