"""One run's settings, directories and results, and the steps every workload shares: a fresh mount, a
prepared and timed read whose pixels are checked against the other readers, a row in the results."""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .host import OtherLoad, touch_memory, wait_until_quiet, warm_page_cache, warm_tree
from .images import IMAGE_KEYS, Image, Sizes, image_specs
from .mounts import Mount
from .readers import canonical, fingerprint
from .results import Results, Row

# zarrfs's default --cache-size, which every mount here uses unless it says otherwise.
DEFAULT_CACHE = "512MiB"


@dataclass(frozen=True)
class Settings:
    sizes: Sizes
    workdir: Path
    only: frozenset[str] = frozenset(IMAGE_KEYS)  # images to run
    repeats: int = 2  # runs of each full read and first chunk (the best counts)
    keep_converted: bool = False
    profile: bool = True  # re-run missed targets under py-spy
    output: Path | None = None  # the report; a notes block in an existing one is kept


@dataclass(frozen=True)
class Measured:
    seconds: float
    nbytes: int
    other_cores: float  # cores other processes used meanwhile
    client_cpu: float  # CPU seconds of this process, the reader's threads included


class Session:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sizes = settings.sizes
        self.workdir = settings.workdir.resolve()
        self.mnt_dir = self.workdir / "mnt"
        self.log_dir = self.workdir / "logs"
        self.converted_dir = self.workdir / "converted"
        self.profile_dir = self.workdir / "profiles"
        for directory in (self.workdir, self.mnt_dir, self.log_dir, self.converted_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self.images = [i for i in image_specs(self.sizes, self.workdir) if i.key in settings.only]
        self.results = Results()
        self.started = time.perf_counter()

    def log(self, message: str) -> None:
        elapsed = time.perf_counter() - self.started
        print(f"[{elapsed:6.0f} s] {message}", flush=True)

    def image(self, key: str) -> Image:
        return next(i for i in self.images if i.key == key)

    def mount(self, image: Image, name: str, options: Sequence[str] = ()) -> Mount:
        # The readers here use both Zarr formats: both layouts unless a run names --ngff (0.4 is the default).
        layouts = [] if "--ngff" in options else ["--ngff", "all"]
        return Mount(image.source, self.mnt_dir / f"{image.key}-{name}", [*options, *layouts], self.log_dir)

    def cold_read(
        self, image: Image, tool: str, read: Callable[[], np.ndarray], pid: int | None = None
    ) -> Row:
        """One prepared, timed read, recorded (the daemon's or server's CPU not counted as other load)."""
        run = self.measure(image, tool, read, pid)
        return self.record(image, "full", tool, run.seconds, run.nbytes, runs_note([run]))

    def record(
        self,
        image: Image,
        workload: str,
        tool: str,
        seconds: float,
        nbytes: int = 0,
        note: str = "",
        label: str = "",
    ) -> Row:
        row = Row(image.key, workload, tool, seconds, nbytes, note, label)
        self.results.rows.append(row)
        rate = f"{row.gbps:.2f} GB/s" if nbytes else ""
        self.log(f"  {image.key} {workload:<10} {row.label:<44} {seconds:8.3f} s {rate} {note}")
        return row

    def check(self, image: Image, tool: str, array: np.ndarray) -> None:
        value = fingerprint(canonical(image, array))
        prints = self.results.fingerprints.setdefault(image.key, {})
        reference = next(iter(prints.values()), None)
        prints[tool] = value
        if reference is not None and value != reference:
            self.results.mismatches.append(f"image {image.key}: {tool} returned different pixels")
            self.log(f"  WARNING: {tool} returned different pixels for image {image.key}")

    def prepare(self, image: Image, warm: Path | None = None, factor: float = 2.0) -> None:
        """Before a timed read: the source (or ``warm``) in the page cache, and the memory the read will
        need (its result, the mount's page cache, the daemon's cache) touched once; see touch_memory.
        First waits (up to 20 s) until other processes leave the CPUs alone."""
        gc.collect()
        self.results.waited += wait_until_quiet()
        if warm is not None and warm.is_dir():
            warm_tree(warm)
        elif warm is not None:
            warm_page_cache(warm)
        else:
            warm_image(image)
        touch_memory(int(factor * image.nbytes) + 2**29)

    def measure(
        self,
        image: Image,
        tool: str,
        read: Callable[[], np.ndarray],
        pid: int | None = None,
        warm: Path | None = None,
    ) -> Measured:
        """One prepared, timed read; the pixels are checked against the other readers'. Other processes'
        CPU excludes ``pid`` (the daemon serving the read)."""
        self.prepare(image, warm)
        cpu_before = time.process_time()
        with OtherLoad(pid) as load:
            array = read()
        client_cpu = time.process_time() - cpu_before
        self.check(image, tool, array)
        nbytes = array.nbytes
        del array
        gc.collect()
        return Measured(load.seconds, nbytes, load.cores, client_cpu)

    def timed_read(
        self, image: Image, workload: str, tool: str, read: Callable[[], np.ndarray], warm: Path | None = None
    ) -> Row:
        run = self.measure(image, tool, read, warm=warm)
        return self.record(image, workload, tool, run.seconds, run.nbytes)

    def best_of(self, image: Image, tool: str, read: Callable[[], np.ndarray], workload: str = "full") -> Row:
        """The fastest of --repeats prepared reads (this VM is noisy: +-30% between identical runs)."""
        runs = [self.measure(image, tool, read) for _ in range(self.settings.repeats)]
        best = min(runs, key=lambda run: run.seconds)
        return self.record(image, workload, tool, best.seconds, runs[0].nbytes, runs_note(runs))


def warm_image(image: Image) -> None:
    """Every file of the image in the page cache (readers start from there)."""
    for file in image.files():
        warm_page_cache(file)


def runs_note(runs: Sequence[Measured]) -> str:
    """'best of 7.28, 6.91 s', with the CPU other processes took meanwhile where it was notable."""
    note = "" if len(runs) < 2 else "best of " + ", ".join(f"{run.seconds:.2f}" for run in runs) + " s"
    others = [run.other_cores for run in runs]
    if others and max(others) >= 0.15:
        note += (
            ("; " if note else "")
            + "other processes used "
            + ", ".join(f"{o:.1f}" for o in others)
            + " cores"
        )
    return note


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else math.nan
