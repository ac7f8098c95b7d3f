"""The report: PASS/FAIL lines on the console, BENCHMARKS.md, and the raw results as JSON."""

from __future__ import annotations

import datetime
import json
import math
from pathlib import Path

from . import COST
from .host import machine
from .images import GIB, IMAGE_KEYS, MB
from .results import Results
from .servers import CONNECTIONS
from .session import Session
from .targets import Target

ENTRY_POINT = "python -m scripts.bench"
NOTES_BEGIN = "<!-- notes: kept across runs -->"
NOTES_END = "<!-- /notes -->"


def summary(targets: list[Target]) -> str:
    lines = ["", "TARGETS"]
    for target in targets:
        verdict = "PASS" if target.passed else "FAIL"
        lines.append(f"  {verdict}  [{target.image}] {target.name}: {target.measured} (goal {target.goal})")
        lines += [f"          {line}" for line in target.explanation]
    passed = sum(t.passed for t in targets)
    lines.append(f"  {passed}/{len(targets)} targets met")
    return "\n".join(lines)


def write_json(results: Results, targets: list[Target], path: Path) -> None:
    data = results.as_json()
    data["targets"] = [{k: v for k, v in vars(t).items() if k != "profile"} for t in targets]
    path.write_text(json.dumps(data, indent=1, default=str))


def _fmt_s(seconds: float) -> str:
    if math.isnan(seconds):
        return "n/a"
    return f"{seconds:.3f}" if seconds < 10 else f"{seconds:.1f}"


def _ms(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f}"


def render(session: Session, targets: list[Target], command: str, total_seconds: float) -> str:
    info = machine()
    results = session.results
    out = [
        "# Benchmarks",
        "",
        "zarrfs against what users would run instead (convert first with ome-zarr-py, or open the TIFF "
        "in-process with tifffile), measured side by side in one run by `scripts/bench/` (issue 4). "
        "Written by the script: "
        "rerun it rather than editing numbers by hand.",
        "",
        f"Run: {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, {session.sizes.label} size, "
        f"{total_seconds / 60:.1f} min in all.",
        "",
        "## Machine",
        "",
        f"- CPU: {info['cpu']}",
        f"- RAM: {info['ram']}",
        f"- Kernel: {info['kernel']}; FUSE: {info['fuse']}",
        f"- Memory writes: {results.memory_rates[0]:.2f} GB/s to fresh memory after 5 s idle, "
        f"{results.memory_rates[1]:.2f} GB/s to just-freed memory (this VM backs guest memory lazily and "
        "takes freed memory back within seconds; see Method)",
        f"- Python {info['python']}",
        f"- Packages: {info['packages']}",
        "",
        "## Rerun",
        "",
        "```console",
        f"$ make bench                         # = .venv/bin/{ENTRY_POINT} --output BENCHMARKS.md",
        f"$ {ENTRY_POINT} --quick  # smoke run on small images",
        f"$ {command}     # this run",
        "```",
        "",
        "Images are generated once into `--workdir` (default `./bench-data`, keep it out of git) and reused. "
        f"Options: `--only {','.join(IMAGE_KEYS)}` (a subset), `--keep-converted`, `--no-profile`. "
        f"Cost: {COST}.",
        "",
        "## Images",
        "",
        "| | image | file | pixels (level 0) | details |",
        "| --- | --- | --- | --- | --- |",
    ]
    for image in session.images:
        size = image.disk_bytes
        out.append(
            f"| {image.key} | {image.title} | {size / MB:,.0f} MB | {image.nbytes / GIB:.2f} GiB | "
            f"{image.description} |"
        )
    out += [
        "",
        "## Method",
        "",
        "- Full reads and first-chunk times are the best of `--repeats` runs (all runs are listed); the "
        "other figures are one run. Each timed read waits (up to 20 s) until other processes use less "
        f"than a quarter of a core (this run waited {results.waited:.0f} s in all); where they still used "
        "notable CPU during a run, the row says so. "
        "Defaults everywhere "
        "(`--compressor none`, chunks ~512x512 aligned to the tiles, 512 MiB cache) unless a row says "
        "otherwise.",
        "- Every read through the mount starts on a fresh mount: zarrfs cache and the mount's page cache "
        "empty. Readers run in the benchmark process (tensorstore, zarr-python, dask with its threaded "
        "scheduler); the daemon is `zarrfs mount` as users run it.",
        "- Before every timed read the source file (or the converted copy) is read into the page cache, and "
        "twice the result's size of memory is written once and freed. The VM this was written on evicts idle "
        "page cache within tens of seconds (DAMON reclaim) and hands freed guest memory back to the host "
        "(virtio-balloon free page reporting): without this, the first reader after a pause pays disk reads "
        "and page faults at the 'fresh memory' rate above.",
        "- Random access: open + read + close of whole chunk files with plain system calls, so the figures "
        "are the mount's, not a client's.",
        "- Image d (50 GiB of pixels) is not read whole nor converted: it does not fit in memory, and its "
        "conversion time is estimated from image a's measured conversion rate.",
        "",
        "## Results",
        "",
        "### 1. Full read of level 0, 6. second pass, and the conversion",
        "",
        "Ratio = speed relative to the image's own reader: `tifffile.imread` for the TIFF images, h5py, "
        "nibabel, tensorstore on the store, `tifffile.imread` of the files for the other formats, "
        "tensorstore through a FUSE mount for the served image (higher is faster).",
        "",
    ]
    order = {"full": 0, "2nd pass": 1, "convert": 2}
    for image in session.images:
        rows = sorted(
            (r for r in results.rows if r.image == image.key and r.workload in order),
            key=lambda r: order[r.workload],
        )
        if not rows:
            continue
        imread = results.find(image.key, image.reference)
        out += [
            f"**{image.key}: {image.title}**",
            "",
            "| workload | tool | seconds | GB/s | ratio | note |",
            "| --- | --- | ---: | ---: | ---: | --- |",
        ]
        for row in rows:
            ratio = f"{imread.seconds / row.seconds:.2f}x" if imread and row.workload != "convert" else ""
            rate = f"{row.gbps:.2f}" if row.nbytes else ""
            out.append(
                f"| {row.workload} | {row.label} | {_fmt_s(row.seconds)} | {rate} | {ratio} | {row.note} |"
            )
        out.append("")
    out += [
        "### 2. Random chunk files (open + read + close), milliseconds",
        "",
        "| image | chunks | chunk bytes | n | cold p50 | cold p99 | warm p50 | warm p99 |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for e in results.random:
        out.append(
            f"| {e.image} | {e.label} | {e.chunk_bytes:,} | {e.count} | {e.cold_p50:.2f} | "
            f"{e.cold_p99:.2f} | {_ms(e.warm_p50)} | {_ms(e.warm_p99)} |"
        )
    out += [
        "",
        "Cold: fresh mount, source in the page cache. Warm: the same chunks again, in shuffled order "
        "(served by the kernel page cache). Image d samples half inside its written block, half anywhere.",
        "",
        "### 3. Time to first chunk vs converting first",
        "",
        "| image | mount | zarr open | first chunk (center) | total (best) | all runs | conversion "
        "| conversion / total |",
        "| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    for f in results.first_chunk:
        convert = results.conversion(f.image)
        estimated = " (est.)" if convert and convert.tool == "convert_estimated" else ""
        conv = f"{convert.seconds:.1f} s{estimated}" if convert else "n/a"
        ratio = f"{convert.seconds / f.total:.0f}x" if convert else "n/a"
        out.append(
            f"| {f.image} | {f.mount:.3f} s | {f.open:.3f} s | {f.chunk:.3f} s | "
            f"{f.total:.3f} s | {', '.join(f'{t:.2f}' for t in f.runs)} s | {conv} | {ratio} |"
        )
    out += [
        "",
        "### 4. Every level once (tensorstore, coarse to fine) vs level 0 alone",
        "",
        "| image | levels | cache | level 0 alone | all levels | ratio | per level (coarse to fine) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for lv in results.levels:
        per = ", ".join(f"{n}: {s:.2f}" for n, s in lv.per_level)
        out.append(
            f"| {lv.image} | {lv.levels} | {lv.cache} | {lv.level0:.2f} s | {lv.seconds:.2f} s | "
            f"{lv.seconds / lv.level0:.2f}x | {per} |"
        )
    out += [
        "",
        "### 5. Daemon memory while reading level 0 with tensorstore",
        "",
        "| image | cache size | image / cache | RSS after mount | peak RSS (VmHWM) | peak - cache |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results.rss:
        out.append(
            f"| {r.image} | {r.cache / MB:.0f} MB | {r.ratio:.1f}x | {r.start / MB:.0f} MB | "
            f"{r.peak / MB:.0f} MB | {(r.peak - r.cache) / MB:.0f} MB |"
        )
    out += _serving_section(results)
    out += _repository_section(results)
    out += _remote_section(results)
    if results.unmeasured:
        out += [
            "",
            "### Not measured",
            "",
            *[f"- [{u.image}] {u.what}: {u.reason}" for u in results.unmeasured],
        ]
    out += [
        "",
        "## Targets",
        "",
        "| result | target | image | measured | goal |",
        "| --- | --- | --- | --- | --- |",
    ]
    for t in targets:
        out.append(
            f"| {'PASS' if t.passed else '**FAIL**'} | {t.name} | {t.image} | {t.measured} | {t.goal} |"
        )
    passed = sum(t.passed for t in targets)
    out += ["", f"{passed} of {len(targets)} targets met.", ""]
    misses = [t for t in targets if not t.passed]
    if misses:
        out += ["### Misses, with what was measured", ""]
        for t in misses:
            out.append(f"- **[{t.image}] {t.name}**: {t.measured}.")
            out += [f"  - {line}" for line in t.explanation]
        out += ["", "Raw py-spy profiles (collapsed stacks) are kept in `<workdir>/profiles/`.", ""]
    if results.mismatches:
        out += ["### Pixel mismatches", "", *[f"- {m}" for m in results.mismatches], ""]
    notes = kept_notes(session.settings.output)
    if notes:
        out += [notes, ""]
    return "\n".join(out).rstrip() + "\n"


def _serving_section(results: Results) -> list[str]:
    if not results.serving:
        return []
    out = [
        "",
        f"### 7. HTTP: warm GETs of one URL, wrk with {CONNECTIONS} connections",
        "",
        "| image | server | document | bytes | requests/s | GB/s | p50 | p99 |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for e in results.serving:
        out.append(
            f"| {e.image} | {e.label} | {e.document} | {e.nbytes:,} | {e.requests_per_s:,.0f} | "
            f"{e.gbps:.2f} | {e.p50_ms:.2f} ms | {e.p99_ms:.2f} ms |"
        )
    return [
        *out,
        "",
        "Both servers on 127.0.0.1, started by the bench and stopped after their rows: `zarrfs serve` of the "
        "image (its chunk made once, then from its cache), nginx over a copy of the mount's tree. The cold "
        "full reads over HTTP are in table 1.",
    ]


def _repository_section(results: Results) -> list[str]:
    if not results.repository:
        return []
    out = [
        "",
        "### 8. A repository: one mount of a tree of many images",
        "",
        "| image | images | directories | mount | ls, cold (entries) | then ls -l "
        "| first read of a node, median (max) | find -name .zattrs | daemon RSS after find (cache) "
        "| new file listed and read |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for e in results.repository:
        reads = f"{e.first_read_p50:.1f} ms ({max(e.first_reads):.1f} ms)" if e.first_reads else "n/a"
        find = f"{_fmt_s(e.find)} s ({e.found / e.find:,.0f} images/s)" if e.found else "n/a"
        rss = f"{e.rss / MB:.0f} MB ({e.cache / MB:.0f} MB)" if e.rss else "n/a"
        out.append(
            f"| {e.image} | {e.images:,} | {e.directories} | {_fmt_s(e.mount)} s | {_fmt_s(e.ls)} s "
            f"({e.listed:,}) | {_fmt_s(e.ls_long)} s | {reads} | {find} | {rss} | {_fmt_s(e.visible)} s |"
        )
    return [
        *out,
        "",
        "`zarrfs mount TREE MNT --cache-size 64MiB`, one mount for the whole table, steps in this order: "
        "`ls` of the largest directory (cold: the readdir that scans it), then `ls -l` of it (a FUSE lookup "
        "of every entry); the first read of single image nodes spread over the tree "
        "(`.zattrs`, `0/.zarray` and the chunk, with plain system calls; the chunk checked against "
        "tifffile); `find` over the whole tree (opens every image); the daemon's VmRSS; then a TIFF written "
        "into the tree (in place, as a scanner writes it), polled every 10 ms until its node is listed and "
        "its chunk reads as the file's pixels.",
    ]


def _remote_section(results: Results) -> list[str]:
    if not (results.remote_open or results.remote_reads):
        return []
    out = [
        "",
        "### 9. Remote sources over HTTP: nginx, directly and through a delaying proxy",
        "",
        "| image | added latency | mount | requests to mount (MB) | zarr open | first chunk | requests "
        "(open + chunk) | total (best) | all runs |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for e in results.remote_open:
        out.append(
            f"| {e.image} | {e.latency_ms:g} ms | {e.mount:.3f} s | {e.open_requests} "
            f"({e.open_bytes / MB:.1f}) | {e.open:.3f} s | {e.chunk:.3f} s | {e.chunk_requests} | "
            f"{e.total:.3f} s | {', '.join(f'{t:.2f}' for t in e.runs)} s |"
        )
    out += [
        "",
        "| image | added latency | read | seconds | GB/s | requests | MB transferred |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in results.remote_reads:
        out.append(
            f"| {r.image} | {r.latency_ms:g} ms | {r.label} | {_fmt_s(r.seconds)} | {r.gbps:.2f} | "
            f"{r.requests:,} | {r.request_bytes / MB:,.0f} |"
        )
    return [
        *out,
        "",
        "nginx serves the work directory on 127.0.0.1 (the files in its page cache); at 0 ms clients reach "
        "it directly, otherwise through `scripts/bench/proxy.py`, which delivers each request (and each new "
        "connection) that much later and answers undelayed: one added latency per round trip, unlimited "
        "bandwidth. Requests are counted in nginx's access log. Every mount is fresh (`--ngff 0.5`); the "
        "second pass is a fresh mount with the `--disk-cache` the first pass filled.",
    ]


def kept_notes(output: Path | None) -> str:
    """A hand-written analysis block in the previous report (between the markers) is carried over."""
    if output is None or not output.exists():
        return ""
    text = output.read_text()
    start, end = text.find(NOTES_BEGIN), text.find(NOTES_END)
    return text[start : end + len(NOTES_END)] if 0 <= start < end else ""
