"""Servers the remote-source tests start on 127.0.0.1 and stop after: nginx over a directory (byte ranges,
ETags, an access log to count requests in) and moto's S3 server (its request log likewise)."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mounting import require_tools

HOST = "127.0.0.1"
# The bucket the S3 tests upload to, and the credentials they use (which must never appear in any output).
BUCKET = "images"
KEY_ID = "AKIDZARRFSTESTKEY15"
SECRET = "zarrfs-secret-access-key-do-not-show"
STARTUP_S = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def _wait_accepting(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited at start: {log.read_text(errors='replace')[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"server accepted no connection within {STARTUP_S:.0f} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@dataclass
class Nginx:
    url: str  # http://127.0.0.1:PORT
    access_log: Path

    def requests(self) -> list[str]:
        """Lines of the access log: ``METHOD URI RANGE STATUS``."""
        return self.access_log.read_text().splitlines()

    def count(self, name: str) -> int:
        return sum(1 for line in self.requests() if line.split()[1] == "/" + name)


@contextlib.contextmanager
def nginx(root: Path, workdir: Path, autoindex: bool = False) -> Iterator[Nginx]:
    """nginx serving ``root``; ``/forbidden/`` answers 403; with ``autoindex``, directories are listed (its
    HTML index pages). Its workers run as this user (as root they would drop to nobody, who may not read
    pytest's directories)."""
    binary = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    if binary is None:
        # Fails saying how to install it (a counted skip with ZARRFS_REQUIRE_FUSE=0).
        require_tools("nginx")
    assert binary is not None
    workdir.mkdir(parents=True, exist_ok=True)
    temp = workdir / "temp"
    temp.mkdir(exist_ok=True)
    port = free_port()
    access_log = workdir / "access.log"
    temp_paths = "\n".join(
        f"  {kind}_temp_path {temp}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    config = workdir / "nginx.conf"
    config.write_text(
        f"""user {pwd.getpwuid(os.getuid()).pw_name};
daemon off;
worker_processes 2;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log;
events {{ worker_connections 1024; }}
http {{
  log_format counted '$request_method $uri $http_range $status';
  access_log {access_log} counted;
  default_type application/octet-stream;
{temp_paths}
  server {{
    listen {HOST}:{port};
    root {root};
    autoindex {"on" if autoindex else "off"};
    location /forbidden/ {{ return 403; }}
  }}
}}
"""
    )
    log = workdir / "stderr.log"
    with open(log, "wb") as stderr:
        process = subprocess.Popen(
            [binary, "-p", str(workdir), "-c", str(config), "-e", str(workdir / "error.log")],
            stdout=stderr,
            stderr=stderr,
        )
    try:
        _wait_accepting(port, process, log)
        yield Nginx(f"http://{HOST}:{port}", access_log)
    finally:
        _stop(process)


@dataclass
class MotoS3:
    endpoint: str
    log: Path

    def requests(self) -> list[str]:
        """Request lines moto's server logged, e.g. ``GET /bucket/key HTTP/1.1`` with its status."""
        return [line for line in self.log.read_text(errors="replace").splitlines() if '"' in line]

    def count(self, key: str) -> int:
        return sum(1 for line in self.requests() if f"/{key} " in line or f"/{key}?" in line)

    def client(self) -> Any:
        """A boto3 S3 client of this server, with the test credentials KEY_ID and SECRET."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=KEY_ID,
            aws_secret_access_key=SECRET,
            region_name="us-east-1",
        )

    def upload(self, root: Path, bucket: str = BUCKET) -> None:
        """Create ``bucket`` and put every file under ``root`` into it, keyed by its path below ``root``."""
        client = self.client()
        client.create_bucket(Bucket=bucket)
        for path in sorted(root.rglob("*")):
            if path.is_file():
                client.upload_file(str(path), bucket, str(path.relative_to(root)))


@contextlib.contextmanager
def moto_s3(workdir: Path) -> Iterator[MotoS3]:
    """moto's S3 server (PyPI ``moto[server]``) as a subprocess."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = workdir / "moto.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)], stdout=output, stderr=output
        )
    try:
        _wait_accepting(port, process, log)
        yield MotoS3(f"http://{HOST}:{port}", log)
    finally:
        _stop(process)
