"""The benchmark package runs end to end on tiny images through real mounts (so it cannot rot unnoticed),
and states its cost once: --help, README.md and the Makefile say the same sentence."""

from __future__ import annotations

import math
import re
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from mounting import require_fuse

from scripts.bench import COST, cli, misses, session
from scripts.bench.images import Sizes
from scripts.bench.report import render
from scripts.bench.results import TOOLS
from scripts.bench.session import Session, Settings
from scripts.bench.targets import GOALS

ROOT = Path(__file__).resolve().parent.parent

# Small enough for seconds per workload; image a still reads 4x the cache, so the RSS target applies.
TINY = Sizes(
    "tiny", 2048, (4, 256, 512), 1024, 3, 16384, 2, "2MiB", 20, "-tiny",
    (8, 512, 512), "1MiB", (16, 4096, 2048), 50, 1024, 1,
    40, 2, 20, 16384, 2, (4, 256, 512),
)  # fmt: skip


def _flat(text: str) -> str:
    """Text with line breaks, comment and Markdown marks dropped: a sentence wrapped in a file matches."""
    return " ".join(re.sub(r"^\s*#+|`", "", text, flags=re.MULTILINE).split())


def test_cost_is_stated_once_and_quoted_everywhere() -> None:
    help_text = subprocess.run(
        [sys.executable, "-m", "scripts.bench", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    cost = _flat(COST)
    for where, text in [
        ("--help", help_text),
        ("README.md", (ROOT / "README.md").read_text()),
        ("Makefile", (ROOT / "Makefile").read_text()),
    ]:
        assert cost in _flat(text), f"{where} does not quote the bench's cost: {COST!r}"


def test_bench_runs_every_workload_on_tiny_images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_fuse()
    # Waiting for a quiet machine and warming the VM's memory matter for figures, not for correctness.
    monkeypatch.setattr(session, "wait_until_quiet", lambda: 0.0)
    monkeypatch.setattr(session, "touch_memory", lambda nbytes: None)
    monkeypatch.setattr(cli, "memory_touch_rates", lambda: (1.0, 1.0))
    monkeypatch.setattr(misses, "startup_seconds", lambda: (0.1, 0.1))
    output = tmp_path / "BENCHMARKS.md"
    # Images a (2-D, computed levels, every random-access variant), c (RGB, stored levels) and d (sparse, its
    # conversion estimated) take every TIFF path of the bench; b adds only another shape. e-l are the other
    # formats (issue 12), w the HTTP rows against nginx (issue 13), r a repository tree (issue 14), u and v
    # remote images over HTTP, directly and through the delaying proxy (issue 15). Where this zarrfs lacks a
    # feature, its rows are "not measured" with the reason, and their targets missed with it.
    only = frozenset("acdefghijklwruv")
    run = Session(Settings(sizes=TINY, workdir=tmp_path / "work", only=only, repeats=1, output=output))

    targets = cli.run(run)
    report = render(run, targets, "python -m scripts.bench (test)", 1.0)

    results = run.results
    # Every reader returned tifffile's pixels (tifffile reads first: the reference).
    assert results.mismatches == []
    for key in "ac":
        assert next(iter(results.fingerprints[key])) == "tifffile"
        assert set(results.fingerprints[key]) >= {
            "tifffile",
            "aszarr",
            "open_store",
            "mount_tensorstore",
            "mount_tensorstore_page_cache",
            "mount_zarr",
            "mount_dask",
            "converted_tensorstore",
            "converted_zarr",
        }
    # The other formats: the format's own reader first (the reference), then through the mount.
    for image in run.images:
        if image.format not in ("tiff", "http", "remote") and image.full_read:
            assert list(results.fingerprints[image.key]) == [image.reference, "mount_tensorstore"]
    assert {entry.image for entry in results.first_chunk} == set("acdefghijkl")
    # HTTP: the same pixels over HTTP from both servers as through the mount, and wrk rows for both.
    assert set(results.fingerprints["w"]) == {"mount_tensorstore", "http_tensorstore", "nginx_tensorstore"}
    served = {(entry.server, entry.document) for entry in results.serving}
    assert served == {
        (server, document) for server in ("zarrfs", "nginx") for document in ("chunk", "metadata")
    }
    assert all(entry.requests_per_s > 0 and entry.nbytes > 0 for entry in results.serving)
    # Remote: tifffile over fsspec read the OME-TIFF at both latencies (its pixels checked against the mount's
    # where that was measured: no mismatches above), each request through the proxy one round trip later.
    fsspec = {e.latency_ms: e for e in results.remote_reads if e.tool == "fsspec_tifffile"}
    assert set(fsspec) == {0.0, 20.0}
    assert all(e.requests > 0 and e.request_bytes > 0 for e in fsspec.values())
    assert fsspec[20.0].seconds >= 0.02 * fsspec[20.0].requests
    # Each row of issues 14 and 15 either measured or said why not.
    assert [e.image for e in results.repository] == ["r"]
    for key, measured in [
        ("r", not math.isnan(results.repository[0].mount)),
        ("u", len(results.remote_open) == 2),
        ("v", len(results.remote_reads) == 6),
    ]:
        assert measured or results.not_measured(key), f"image {key}: neither measured nor said why not"
    measured = {(row.image, row.tool) for row in results.rows}
    assert {("a", "mount_tensorstore"), ("c", "mount_tensorstore")} <= measured
    assert ("a", "local_raw_tensorstore") in measured
    assert ("d", "convert_estimated") in measured
    variants = {entry.variant for entry in results.random}
    assert variants == {"256_decoded", "256_passthrough", "default", "256_core"}
    # Every target in the table was evaluated (first chunk: one verdict for its two goals).
    assert {t.key for t in targets} == {
        key for key in GOALS if key.split(".")[1] in only and not key.endswith(".vs_conversion")
    }
    assert all(t.passed or t.explanation for t in targets)
    for heading in [
        "## Images",
        "### 2. Random chunk files",
        "### 5. Daemon memory",
        "### 7. HTTP",
        "### 8. A repository",
        "### 9. Remote sources",
        "## Targets",
    ]:
        assert heading in report
    for target in targets:
        assert f"| {target.name} | {target.image} | {target.measured} | {target.goal} |" in report
    for row in results.rows:
        assert row.label == TOOLS[row.tool] or row.tool == "mount_tensorstore_levels"
    with open("/proc/self/mountinfo") as mounts:
        assert str(tmp_path) not in mounts.read()
    # No server is left running (zarrfs serve names the source, nginx its config, both under tmp_path).
    for process in psutil.process_iter(["cmdline"]):
        assert not any(str(tmp_path) in part for part in process.info["cmdline"] or [])


def test_latency_proxy_delays_each_round_trip(tmp_path: Path) -> None:
    """The remote rows' proxy (issue 15): a new connection costs one added latency, each request on it
    another; answers come back whole."""
    import functools
    import http.client
    import http.server
    import threading

    from scripts.bench.remote import front

    (tmp_path / "data.bin").write_bytes(bytes(range(256)) * 4096)

    class Handler(http.server.SimpleHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: the requests below share one connection

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(tmp_path))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    latency, requests = 0.1, 4
    try:
        with front(f"http://127.0.0.1:{server.server_address[1]}", latency * 1000, tmp_path) as base:
            host, port = base.removeprefix("http://").rsplit(":", 1)
            connection = http.client.HTTPConnection(host, int(port), timeout=30)
            start = time.perf_counter()
            for _ in range(requests):
                connection.request("GET", "/data.bin")
                assert connection.getresponse().read() == (tmp_path / "data.bin").read_bytes()
            elapsed = time.perf_counter() - start
            connection.close()
    finally:
        server.shutdown()
        server.server_close()
    assert (requests + 1) * latency <= elapsed < (requests + 1) * latency + 2.0
