"""What a run measured: rows of timed reads and the entries of each workload, keyed by identifiers (tools,
random-access variants) that the targets and the report look up; labels are only for people."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

# The tools of the timed rows, by identifier: the label each row shows.
TOOLS = {
    "tifffile": "tifffile.imread (in-process)",
    "tifffile_all_cores": f"tifffile.imread, maxworkers={os.cpu_count()} (in-process)",
    "aszarr": "zarr-python over tifffile aszarr (in-process)",
    "open_store": "zarr-python over zarrfs.open_store (in-process)",
    "core": "zarrfs core only (in-process, 2 threads)",
    "mount_tensorstore": "tensorstore through the mount",
    "mount_tensorstore_page_cache": "tensorstore through the mount (page cache)",
    "mount_plain_page_cache": "plain open/read/close of every chunk file (page cache)",
    "mount_zarr": "zarr-python through the mount",
    "mount_dask": "dask (threads) + zarr-python through the mount",
    "mount_tensorstore_levels": "tensorstore, every level coarse to fine",  # the row names levels and cache
    "converted_tensorstore": "tensorstore over the converted OME-Zarr",
    "converted_zarr": "zarr-python over the converted OME-Zarr",
    "local_raw_tensorstore": "tensorstore over an uncompressed local Zarr (page cache)",
    "convert": "ome-zarr-py write_image (whole pyramid)",
    "convert_estimated": "ome-zarr-py write_image (ESTIMATED from image a's rate)",
    # the other formats' own readers (issue 12)
    "h5py": "h5py dset[...] (in-process)",
    "nibabel": "nibabel dataobj[...] (in-process)",
    "tensorstore_store": "tensorstore on the store itself (in-process)",
    "tifffile_sequence": "tifffile.imread of the files (in-process)",
    # over HTTP (issue 13)
    "http_tensorstore": "tensorstore over HTTP from zarrfs serve",
    "nginx_tensorstore": "tensorstore over HTTP from nginx (converted copy)",
}

# The servers of the HTTP rows, by identifier: the label each shows.
SERVERS = {
    "zarrfs": "zarrfs serve",
    "nginx": "nginx over a converted copy",
}

# The reads of the remote rows (issue 15), by identifier: the label each shows.
REMOTE_TOOLS = {
    "fsspec_tifffile": "tifffile.imread over fsspec.open(url) (in-process)",
    "mount_tensorstore": "tensorstore through a fresh mount of the URL",
    "disk_cache": "tensorstore through a fresh mount, the same --disk-cache (second pass)",
}

# Random-access variants, by identifier: the label each shows.
VARIANTS = {
    "256_decoded": "256x256 chunks (decoded)",
    "256_passthrough": "256x256 pass-through (zlib, v2)",
    "default": "default chunks",
    "256_core": "256x256 chunks, zarrfs core in-process (no FUSE)",
}


@dataclass
class Row:
    image: str
    workload: str  # "full", "2nd pass", "convert", "levels"
    tool: str  # a key of TOOLS
    seconds: float
    nbytes: int = 0
    note: str = ""
    label: str = ""

    def __post_init__(self) -> None:
        self.label = self.label or TOOLS[self.tool]

    @property
    def gbps(self) -> float:
        return self.nbytes / self.seconds / 1e9 if self.seconds > 0 and self.nbytes else 0.0


@dataclass
class FirstChunk:
    image: str
    mount: float
    open: float
    chunk: float
    total: float
    runs: list[float] = field(default_factory=list)  # the total of every run; the fields are the best's


@dataclass
class RandomChunks:
    image: str
    variant: str  # a key of VARIANTS
    chunk_bytes: int
    count: int
    cold_p50: float
    cold_p99: float
    warm_p50: float
    warm_p99: float
    options: list[str]

    @property
    def label(self) -> str:
        return VARIANTS[self.variant]


@dataclass
class AllLevels:
    image: str
    levels: int
    cache: str
    seconds: float
    per_level: list[tuple[str, float]]
    computed: bool  # level 1 is made by zarrfs (else stored in the file)
    data_vs_level0: float
    level0: float = math.nan  # level 0 alone, through a fresh mount
    explains_miss: bool = False  # a re-run with a bigger cache, not a target of its own


@dataclass
class PeakRss:
    image: str
    cache: int
    ratio: float  # image bytes / cache bytes
    start: int
    peak: int


@dataclass
class Passes:
    image: str
    first: float  # GB/s
    second: float
    plain: float


@dataclass
class Serving:
    """wrk on one URL of a server: a warm chunk or a metadata document."""

    image: str
    server: str  # a key of SERVERS
    document: str  # "chunk" or "metadata"
    nbytes: int  # bytes of each response body
    requests_per_s: float
    p50_ms: float
    p99_ms: float

    @property
    def label(self) -> str:
        return SERVERS[self.server]

    @property
    def gbps(self) -> float:
        return self.requests_per_s * self.nbytes / 1e9


@dataclass
class Repository:
    """One mount of the repository tree (issue 14); NaN where a step was not measured."""

    image: str
    images: int
    directories: int
    cache: int  # --cache-size of the mount, bytes
    mount: float = math.nan  # seconds
    listed: int = 0  # entries of the directory listed with ls
    ls: float = math.nan  # seconds, ls of that directory, cold (the readdir that scans it)
    ls_long: float = math.nan  # seconds, ls -l of it right after (a FUSE lookup of every entry)
    first_reads: list[float] = field(default_factory=list)  # ms: .zattrs + .zarray + the chunk of a node
    find: float = math.nan  # seconds, find MNT -name .zattrs
    found: int = 0  # image nodes find listed
    rss: int = 0  # the daemon's VmRSS after find, bytes
    visible: float = math.nan  # seconds from writing a new file to its node listed and read

    @property
    def first_read_p50(self) -> float:
        return float(np.median(self.first_reads)) if self.first_reads else math.nan


@dataclass
class RemoteOpen:
    """Time to first chunk of a remote image through a fresh mount of its URL, and the requests it took."""

    image: str
    latency_ms: float  # added by the proxy (0: nginx directly)
    mount: float
    open: float
    chunk: float
    total: float
    open_requests: int  # HTTP requests until the mount was live
    open_bytes: int
    chunk_requests: int  # then: zarr open + the center chunk
    runs: list[float] = field(default_factory=list)  # the total of every run; the fields are the best's


@dataclass
class RemoteRead:
    """A full read of level 0 of a remote image, with the HTTP requests it made."""

    image: str
    latency_ms: float
    tool: str  # a key of REMOTE_TOOLS
    seconds: float
    nbytes: int
    requests: int
    request_bytes: int

    @property
    def label(self) -> str:
        return REMOTE_TOOLS[self.tool]

    @property
    def gbps(self) -> float:
        return self.nbytes / self.seconds / 1e9 if self.seconds > 0 else 0.0


@dataclass
class Unmeasured:
    """A row that could not be measured (e.g. a feature missing from this zarrfs): why, in one line."""

    image: str
    what: str
    reason: str


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    random: list[RandomChunks] = field(default_factory=list)
    first_chunk: list[FirstChunk] = field(default_factory=list)
    levels: list[AllLevels] = field(default_factory=list)
    rss: list[PeakRss] = field(default_factory=list)
    passes: list[Passes] = field(default_factory=list)
    serving: list[Serving] = field(default_factory=list)
    repository: list[Repository] = field(default_factory=list)
    remote_open: list[RemoteOpen] = field(default_factory=list)
    remote_reads: list[RemoteRead] = field(default_factory=list)
    unmeasured: list[Unmeasured] = field(default_factory=list)
    # image -> CPU seconds of the daemon and of the client in the best full read through the mount
    cpu: dict[str, tuple[float, float]] = field(default_factory=dict)
    fingerprints: dict[str, dict[str, int]] = field(default_factory=dict)
    mismatches: list[str] = field(default_factory=list)
    convert_rate: float | None = None  # seconds per byte of pixels of the conversion of image a
    memory_rates: tuple[float, float] = (math.nan, math.nan)
    waited: float = 0.0  # seconds spent waiting for other processes to go quiet

    def find(self, image: str, tool: str) -> Row | None:
        return next((row for row in self.rows if row.image == image and row.tool == tool), None)

    def served(self, server: str, document: str) -> Serving | None:
        return next((e for e in self.serving if e.server == server and e.document == document), None)

    def conversion(self, image: str) -> Row | None:
        return next((r for r in self.rows if r.image == image and r.workload == "convert"), None)

    def remote_read(self, image: str, tool: str, latency_ms: float) -> RemoteRead | None:
        return next(
            (e for e in self.remote_reads if (e.image, e.tool, e.latency_ms) == (image, tool, latency_ms)),
            None,
        )

    def not_measured(self, image: str) -> list[str]:
        """Why rows of ``image`` were not measured, one line each."""
        return [f"{entry.what}: {entry.reason}" for entry in self.unmeasured if entry.image == image]

    def random_variant(self, variant: str) -> RandomChunks | None:
        return next((entry for entry in self.random if entry.variant == variant), None)

    def as_json(self) -> dict[str, Any]:
        return {
            "rows": [asdict(r) for r in self.rows],
            "random": [asdict(e) for e in self.random],
            "ttfc": [asdict(e) for e in self.first_chunk],
            "levels": [asdict(e) for e in self.levels],
            "rss": [asdict(e) for e in self.rss],
            "passes": [asdict(e) for e in self.passes],
            "serving": [asdict(e) for e in self.serving],
            "repository": [asdict(e) for e in self.repository],
            "remote_open": [asdict(e) for e in self.remote_open],
            "remote_reads": [asdict(e) for e in self.remote_reads],
            "unmeasured": [asdict(e) for e in self.unmeasured],
        }
