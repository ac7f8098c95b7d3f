"""Real servers on 127.0.0.1 for remote-source tests and benchmarks, each always stopped: a range-capable
static HTTP server (nginx, Debian's nginx-light) and a local S3 (moto's server).

Both bind a free port chosen by the operating system; nothing listens on another address.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0

_NGINX_CONFIG = """\
daemon off;
master_process off;
worker_processes 1;
user root;
pid {state}/nginx.pid;
error_log {state}/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {state}/body;
    proxy_temp_path {state}/proxy;
    fastcgi_temp_path {state}/fastcgi;
    uwsgi_temp_path {state}/uwsgi;
    scgi_temp_path {state}/scgi;
    default_type application/octet-stream;
    sendfile on;
    keepalive_requests 100000;
    server {{
        listen 127.0.0.1:{port} backlog=1024;
        root {root};
        autoindex on;
        autoindex_format json;
    }}
}}
"""


def free_port() -> int:
    """A port free on 127.0.0.1 now (for servers that cannot be told to choose one and report it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_until_answering(port: int, process: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}: {log.read_text()[-2000:]}")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        try:
            connection.request("HEAD", "/")
            connection.getresponse().read()
            return
        except OSError:
            time.sleep(0.05)
        finally:
            connection.close()
    raise RuntimeError(f"{what} did not answer on port {port} within {START_TIMEOUT_S:g} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def nginx_server(root: Path | str) -> Iterator[str]:
    """Serve the files under ``root`` with nginx (byte ranges, ETag, Last-Modified, a JSON directory index)
    until the block ends; yields its base URL, ``http://127.0.0.1:PORT`` (no trailing slash)."""
    root = Path(root).resolve()
    with tempfile.TemporaryDirectory(prefix="zarrfs-nginx-") as state_name:
        state = Path(state_name)
        for _attempt in range(5):  # the free port may be taken by someone else before nginx binds it
            port = free_port()
            config = state / "nginx.conf"
            config.write_text(_NGINX_CONFIG.format(state=state, port=port, root=root))
            log = state / "error.log"
            process = subprocess.Popen(
                [NGINX, "-p", str(state), "-e", str(log), "-c", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                _wait_until_answering(port, process, "nginx", log)
            except RuntimeError:
                _stop(process)
                if "Address already in use" in (log.read_text() if log.exists() else ""):
                    continue
                raise
            try:
                yield f"http://127.0.0.1:{port}"
            finally:
                _stop(process)
            return
        raise RuntimeError("nginx found no free port in 5 attempts")


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """A local S3 (moto's server, in a subprocess) until the block ends; yields its endpoint URL. Clients
    need credentials of any value (``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY``)."""
    with tempfile.TemporaryDirectory(prefix="zarrfs-moto-") as state_name:
        log = Path(state_name) / "moto.log"
        for _attempt in range(5):
            port = free_port()
            with open(log, "wb") as output:
                process = subprocess.Popen(
                    [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, "PYTHONUNBUFFERED": "1"},
                )
            try:
                _wait_until_answering(port, process, "moto server", log)
            except RuntimeError:
                _stop(process)
                if "Address already in use" in log.read_text():
                    continue
                raise
            try:
                yield f"http://127.0.0.1:{port}"
            finally:
                _stop(process)
            return
        raise RuntimeError("the moto server found no free port in 5 attempts")
