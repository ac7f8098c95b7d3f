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


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say how many tests were skipped for want of FUSE, root or a system tool: never a silent skip."""
    from mounting import ENVIRONMENT_SKIP

    reasons: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        if isinstance(report.longrepr, tuple) and ENVIRONMENT_SKIP in report.longrepr[2]:
            reason = report.longrepr[2].split(ENVIRONMENT_SKIP, 1)[1]
            reasons[reason] = reasons.get(reason, 0) + 1
    if reasons:
        total = sum(reasons.values())
        terminalreporter.section(f"{total} tests that need FUSE, root or system tools were SKIPPED", red=True)
        for reason, count in sorted(reasons.items()):
            terminalreporter.write_line(f"{count:5d}  {reason}")
