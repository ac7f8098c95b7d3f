"""HTTP serving numbers, side by side: ``zarrfs serve`` and nginx (over a converted copy of the same tree).

Rows: wrk with 16 connections on one warm 512 KiB chunk (GB/s, p50/p99 latency) and on a small metadata
document (requests/s); and a cold full read of level 0 with tensorstore over HTTP against the same read
through a FUSE mount. Needs wrk and nginx (Debian packages) and root for the mount.

    python scripts/bench_http.py [--side 8192] [--workdir /tmp/zarrfs-bench-http]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import tifffile

CHUNK = 512  # 512x512 uint16: 512 KiB chunks
WRK_SECONDS = 10


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def make_source(path: Path, side: int) -> None:
    if path.exists():
        return
    rng = np.random.default_rng(0)
    tile = rng.integers(0, 4000, (256, 256), dtype=np.uint16)
    tiles = (np.roll(tile, index, axis=1) for index in range((side // 256) ** 2))
    tifffile.imwrite(path, tiles, shape=(side, side), dtype=np.uint16, tile=(256, 256))


def wrk(url: str) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t2", "-c16", f"-d{WRK_SECONDS}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def millis(label: str) -> float:
        value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    requests = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return {"requests/s": requests, "p50 ms": millis("50%"), "p99 ms": millis("99%")}


def zarrfs_serve(source: Path, port: int, options: list[str]) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "zarrfs", "serve", str(source), "--port", str(port), *options],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert process.stdout is not None and "serving" in process.stdout.readline()
    return process


def stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)


def nginx(root: Path, port: int, workdir: Path) -> subprocess.Popen[str]:
    conf = workdir / "nginx.conf"
    conf.write_text(
        f"""daemon off; worker_processes 2; pid {workdir}/nginx.pid; error_log {workdir}/nginx.err;
events {{ worker_connections 1024; }}
http {{ access_log off; sendfile on; tcp_nopush on; keepalive_requests 100000;
  types {{ application/json json; }} default_type application/octet-stream;
  client_body_temp_path {workdir}/tmp; proxy_temp_path {workdir}/tmp; fastcgi_temp_path {workdir}/tmp;
  uwsgi_temp_path {workdir}/tmp; scgi_temp_path {workdir}/tmp;
  server {{ listen 127.0.0.1:{port}; root {root};
    add_header Access-Control-Allow-Origin * always; }} }}
"""
    )
    (workdir / "tmp").mkdir(exist_ok=True)
    process = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(workdir)], text=True)
    time.sleep(1)
    return process


def tensorstore_seconds(kvstore: dict[str, str]) -> float:
    code = (
        "import sys, time, json, tensorstore as ts; spec = json.loads(sys.argv[1]); "
        "start = time.perf_counter(); "
        "ts.open({'driver': 'zarr', 'kvstore': spec}, read=True).result().read().result(); "
        "print(time.perf_counter() - start)"
    )
    out = subprocess.run([sys.executable, "-c", code, json.dumps(kvstore)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return float(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--side", type=int, default=8192)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/zarrfs-bench-http"))
    arguments = parser.parse_args()
    workdir: Path = arguments.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    source = workdir / f"plane-{arguments.side}.tif"
    make_source(source, arguments.side)
    mountpoint, copy = workdir / "mnt", workdir / "copy"
    mountpoint.mkdir(exist_ok=True)
    options = ["--chunks", f"{CHUNK},{CHUNK}", "--cache-size", "2GiB", "--ngff", "0.4"]
    rows: list[str] = []

    # Cold full read of level 0: tensorstore through a fresh mount, then over a fresh server.
    subprocess.run(
        [sys.executable, "-m", "zarrfs", "mount", str(source), str(mountpoint), *options], check=True
    )
    try:
        fuse_s = tensorstore_seconds({"driver": "file", "path": f"{mountpoint}/0/"})
        if not copy.exists():
            shutil.copytree(mountpoint, copy)
    finally:
        subprocess.run([sys.executable, "-m", "zarrfs", "unmount", str(mountpoint)], check=True)
    port = free_port()
    server = zarrfs_serve(source, port, options)
    try:
        http_s = tensorstore_seconds({"driver": "http", "base_url": f"http://127.0.0.1:{port}/0/"})
        chunk = wrk(f"http://127.0.0.1:{port}/0/1/1")
        document = wrk(f"http://127.0.0.1:{port}/0/.zarray")
    finally:
        stop(server)
    nginx_port = free_port()
    web = nginx(copy, nginx_port, workdir)
    try:
        nginx_chunk = wrk(f"http://127.0.0.1:{nginx_port}/0/1/1")
        nginx_document = wrk(f"http://127.0.0.1:{nginx_port}/0/.zarray")
        nginx_s = tensorstore_seconds({"driver": "http", "base_url": f"http://127.0.0.1:{nginx_port}/0/"})
    finally:
        web.send_signal(signal.SIGQUIT)
        web.wait(timeout=30)
    level_mb = arguments.side**2 * 2 / 1e6
    chunk_mb = CHUNK * CHUNK * 2 / 1e6
    rows.append(
        "| server | warm 512 KiB chunk GB/s | chunk p50 / p99 ms | metadata req/s | cold level-0 read s |"
    )
    rows.append("|---|---|---|---|---|")
    measured = [
        ("zarrfs serve", chunk, document, http_s),
        ("nginx (converted copy)", nginx_chunk, nginx_document, nginx_s),
    ]
    for name, c, d, cold in measured:
        rows.append(
            f"| {name} | {c['requests/s'] * chunk_mb / 1e3:.2f} | {c['p50 ms']:.2f} / {c['p99 ms']:.2f} | "
            f"{d['requests/s']:.0f} | {cold:.2f} ({level_mb / cold:.0f} MB/s) |"
        )
    rows.append(f"| zarrfs mount (FUSE) | | | | {fuse_s:.2f} ({level_mb / fuse_s:.0f} MB/s) |")
    rows.append(f"\nHTTP / FUSE cold read speed: {fuse_s / http_s:.2f}x")
    print("\n".join(rows))
    print(f"(cpus: {os.cpu_count()})")


if __name__ == "__main__":
    main()
