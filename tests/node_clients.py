"""The JavaScript clients of the HTTP tests (tests/js/package.json), installed once into a cache directory
that outlives test runs (``make test-deps`` does it too): npm is asked only when the pinned list changes."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

PACKAGES = Path(__file__).parent / "js"
CACHE = Path(os.environ.get("ZARRFS_NODE_CACHE", Path.home() / ".cache" / "zarrfs-tests" / "node"))


def node_modules() -> Path:
    """The directory holding tests/js's scripts and their installed packages (scripts resolve imports from
    their own directory, so they are copied beside node_modules)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("node and npm are needed for the JavaScript client tests (apt-get install nodejs npm)")
    CACHE.mkdir(parents=True, exist_ok=True)
    wanted = (PACKAGES / "package.json").read_bytes()
    installed = CACHE / "package.json"
    if not installed.exists() or installed.read_bytes() != wanted or not (CACHE / "node_modules").is_dir():
        installed.write_bytes(wanted)
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=CACHE,
            check=True,
            timeout=600,
        )
    for script in PACKAGES.glob("*.mjs"):
        shutil.copyfile(script, CACHE / script.name)
    return CACHE
