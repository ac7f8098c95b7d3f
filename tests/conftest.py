import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# The conformance suite ships in the package; its asserts should explain themselves like the tests' own.
pytest.register_assert_rewrite("zarrfs.testing")

# Test helpers (tiff_cases, array_source, mounting) are imported as plain modules.
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory an unprivileged user can enter (pytest's own tmp_path is private to root)."""
    directory = Path(tempfile.mkdtemp(prefix="zarrfs-test-"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)
