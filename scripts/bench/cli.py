"""``python -m scripts.bench``: options, the run over every image, the report."""

from __future__ import annotations

import argparse
import atexit
import os
import signal
import sys
import time
from pathlib import Path

from . import COST
from . import __doc__ as DESCRIPTION
from .host import memory_touch_rates
from .images import FULL, IMAGE_KEYS, QUICK, generate
from .mounts import on_signal, unmount_all
from .report import ENTRY_POINT, render, summary, write_json
from .servers import stop_all
from .session import Session, Settings
from .targets import Target, evaluate
from .workloads import describe, estimate_conversions, run_image


def parse_args(argv: list[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(
        prog=ENTRY_POINT,
        description=f"{DESCRIPTION}\nCost: {COST}.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--output", type=Path, help="write the report (Markdown) here, e.g. BENCHMARKS.md")
    parser.add_argument("--quick", action="store_true", help="small images: a smoke run")
    parser.add_argument(
        "--workdir", type=Path, default=Path("bench-data"), help="generated images, copies, mounts, logs"
    )
    parser.add_argument(
        "--only", default=",".join(IMAGE_KEYS), help="comma-separated subset of the images (default: all)"
    )
    parser.add_argument("--keep-converted", action="store_true", help="keep the converted OME-Zarr copies")
    parser.add_argument("--no-profile", action="store_true", help="do not re-run missed targets under py-spy")
    parser.add_argument(
        "--repeats", type=int, default=2, help="runs of each full read that a target uses (best)"
    )
    args = parser.parse_args(argv)
    return Settings(
        sizes=QUICK if args.quick else FULL,
        workdir=args.workdir,
        only=frozenset(key.strip() for key in args.only.split(",") if key.strip()),
        repeats=args.repeats,
        keep_converted=args.keep_converted,
        profile=not args.no_profile,
        output=args.output,
    )


def run(session: Session) -> list[Target]:
    """Every workload over every image, then the verdicts (missed targets profiled when wanted)."""
    session.log(f"{session.sizes.label} run, workdir {session.workdir}")
    rates = session.results.memory_rates = memory_touch_rates()
    session.log(
        f"memory: first write after idle {rates[0]:.2f} GB/s, to just-freed memory {rates[1]:.2f} GB/s"
    )
    for image in session.images:
        generate(image)
    for image in session.images:
        session.log(describe(image))
        run_image(session, image)
    estimate_conversions(session)
    targets = evaluate(session)
    if session.settings.profile:
        profile_misses(session, targets)
    return targets


def profile_misses(session: Session, targets: list[Target]) -> None:
    done: set[tuple[str, str]] = set()
    for target in targets:
        if target.passed or target.profile is None:
            continue
        key = (target.name, target.image)
        if key in done:
            continue
        done.add(key)
        session.log(f"profiling missed target: {target.name} (image {target.image})")
        try:
            target.explanation += ["py-spy: " + line for line in target.profile()]
        except Exception as error:  # a profile is a bonus; never lose the results for it
            target.explanation.append(f"profile failed: {type(error).__name__}: {error}")


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    if os.path.exists("/proc/sys/vm") and not os.path.exists("/dev/fuse"):
        print("bench: /dev/fuse not found: FUSE is needed", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    atexit.register(unmount_all)
    atexit.register(stop_all)
    started = time.perf_counter()
    session = Session(settings)
    try:
        targets = run(session)
    finally:
        stop_all()
        unmount_all()
    total = time.perf_counter() - started
    print(summary(targets))
    print(f"\nfinished in {total / 60:.1f} min")
    write_json(session.results, targets, session.workdir / f"results-{session.sizes.label}.json")
    if settings.output:
        command = " ".join([ENTRY_POINT, *(sys.argv[1:] if argv is None else argv)])
        settings.output.write_text(render(session, targets, command, total))
        print(f"wrote {settings.output}")
    return 0
