"""RELIABILITY.md promises messages: each one quoted there must be asserted by a test its row names.

A row is ``| case | what the user sees | test |``. In "what the user sees", text in backticks is a message the
user sees (``...`` marks a part that varies; each fixed part is checked), except command lines, options,
environment variables and exception class names. The test column names tests (``test_x``, ``test_x[...]``,
``file.py::test_x``) or test files (``tests/test_x.py``); each message must be in a string of one of them: the
test function with its decorators, or module-level code it refers to (its cases, helpers), followed through
the module.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
DOCUMENT = TESTS.parent / "RELIABILITY.md"
SUBCOMMANDS = ("mount", "unmount", "serve", "info")


def _is_message(span: str) -> bool:
    """Whether a backticked span is a message rather than a command, option, variable or class name."""
    return not (
        span.startswith("-")
        or span in SUBCOMMANDS
        or re.fullmatch(r"zarrfs (\w+)( [-\w]+)*", span)  # a command line, e.g. `zarrfs unmount MNT`
        or re.fullmatch(r"[A-Z_]+=\S*", span)  # an environment variable
        or re.fullmatch(r"[A-Z][a-z]\w*(Error|Exception)", span)  # an exception class
    )


def _fragments(message: str) -> list[str]:
    return [part.strip() for part in message.split("...") if part.strip()]


def rows() -> list[tuple[str, list[str], list[str]]]:
    """(case, messages, test names) of every table row of RELIABILITY.md."""
    found = []
    for line in DOCUMENT.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        if not line.startswith("|") or len(cells) != 3 or cells[0] in ("case", "---"):
            continue
        messages = [span for span in re.findall(r"`([^`]+)`", cells[1]) if _is_message(span)]
        tests = re.findall(r"((?:[\w./]+\.py::)?test_\w+(?:\.py)?)", cells[2])
        found.append((cells[0], messages, tests))
    return found


@cache
def _module(path: Path) -> tuple[ast.Module, dict[str, ast.AST]]:
    """A test module and its top-level definitions by name."""
    tree = ast.parse(path.read_text(), filename=str(path))
    definitions: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            definitions[node.name] = node
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    definitions[target.id] = node
    return tree, definitions


def _test_strings(name: str) -> set[str] | None:
    """The string constants a test can assert: its own, and those of the module-level code it refers to (a
    whole test file: all of its strings)."""
    if name.endswith(".py"):
        path = TESTS / Path(name).name
        if not path.is_file():
            return None
        tree, _ = _module(path)
        return {
            node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
        }
    if "::" in name:
        file_name, name = name.split("::")
        paths = [TESTS / Path(file_name).name]
    else:
        paths = sorted(TESTS.glob("test_*.py"))
    for path in paths:
        _, definitions = _module(path)
        test = definitions.get(name)
        if not isinstance(test, ast.FunctionDef):
            continue
        strings: set[str] = set()
        pending, seen = [test], {name}
        while pending:
            node = pending.pop()
            for inner in ast.walk(node):
                if isinstance(inner, ast.Constant) and isinstance(inner.value, str):
                    strings.add(inner.value)
                elif isinstance(inner, ast.Name) and inner.id in definitions and inner.id not in seen:
                    seen.add(inner.id)
                    pending.append(definitions[inner.id])  # type: ignore[arg-type]
        return strings
    return None


def test_the_document_has_rows_with_messages_and_tests() -> None:
    found = rows()
    assert len(found) >= 25
    assert sum(len(messages) for _, messages, _ in found) >= 20
    assert all(tests for _, _, tests in found), [case for case, _, tests in found if not tests]


@pytest.mark.parametrize(("case", "messages", "tests"), rows(), ids=[row[0][:40] for row in rows()])
def test_every_message_in_reliability_md_is_asserted_by_a_test_its_row_names(
    case: str, messages: list[str], tests: list[str]
) -> None:
    strings: set[str] = set()
    for name in tests:
        found = _test_strings(name)
        assert found is not None, f"RELIABILITY.md names {name}, which is no test"
        strings |= found
    missing = [
        fragment
        for message in messages
        for fragment in _fragments(message)
        if not any(fragment in string for string in strings)
    ]
    assert not missing, f"quoted for {case!r} but asserted by none of {tests}: {missing}"
