"""HTTP servers for the bench (issue 13): ``zarrfs serve`` and nginx over a copy of the same tree, both on
127.0.0.1 only and stopped after use (also on errors and signals), and wrk as the load generator."""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import select
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
CONNECTIONS = 16
STARTUP_SECONDS = 60.0

_ACTIVE: list[Server] = []


class Server:
    """``with Server(name, command, log_file) as s``: s.url once it accepts connections; stopped on exit.
    ``port`` None: the server picks one and prints its URL (zarrfs serve --port 0)."""

    def __init__(self, name: str, command: list[str], log_file: Path, port: int | None = None) -> None:
        self.name = name
        self.command = command
        self.log_file = log_file
        self.port = port
        self.url = ""
        self.process: subprocess.Popen[str] | None = None

    def __enter__(self) -> Server:
        with open(self.log_file, "w") as log:
            self.process = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=log, text=True)
        _ACTIVE.append(self)
        try:
            self.url = self._announced_url() if self.port is None else f"http://{HOST}:{self.port}"
            self._wait_accepting()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _failed(self, why: str) -> RuntimeError:
        log = self.log_file.read_text().strip().splitlines()
        return RuntimeError(f"{self.name} {why}: {' '.join(self.command)}: {log[-1] if log else 'no output'}")

    def _announced_url(self) -> str:
        """The URL from the line zarrfs serve prints once it accepts connections (no token: the port)."""
        assert self.process is not None and self.process.stdout is not None
        deadline = time.monotonic() + STARTUP_SECONDS
        while (remaining := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([self.process.stdout], [], [], remaining)
            line = self.process.stdout.readline() if ready else ""
            if ready and not line:
                raise self._failed("exited")
            found = re.search(r"(http://[^/\s]+)", line)
            if found:
                return found.group(1)
        raise self._failed(f"printed no URL within {STARTUP_SECONDS:.0f} s")

    def _wait_accepting(self) -> None:
        assert self.process is not None
        host, port = self.url.removeprefix("http://").rsplit(":", 1)
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise self._failed("exited")
            with contextlib.suppress(OSError), socket.create_connection((host, int(port)), timeout=1):
                return
            time.sleep(0.1)
        raise self._failed(f"accepted no connection within {STARTUP_SECONDS:.0f} s")

    def stop(self) -> None:
        if self not in _ACTIVE:
            return
        _ACTIVE.remove(self)
        assert self.process is not None
        if self.process.poll() is None:
            self.process.terminate()  # zarrfs serve and nginx both stop cleanly on SIGTERM
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                print(f"  {self.name} still running 20 s after SIGTERM: killing it", flush=True)
                self.process.kill()
                self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()


def stop_all() -> None:
    for active in list(_ACTIVE):
        with contextlib.suppress(Exception):
            active.stop()


def zarrfs_server(source: Path, options: list[str], log_dir: Path) -> Server:
    command = [sys.executable, "-m", "zarrfs", "serve", str(source), "--host", HOST, "--port", "0", *options]
    return Server("zarrfs serve", command, log_dir / "zarrfs-serve.log")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def nginx_binary() -> str:
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    if found is None:
        raise RuntimeError(
            "nginx not found: install the Debian package nginx-light (make bench does as root)"
        )
    return found


def nginx_server(root: Path, workdir: Path, log_dir: Path, access_log: Path | None = None) -> Server:
    """nginx serving ``root`` as static files, as a user would set it up in front of a converted copy: its
    config, pid file, temp directories and error log in ``workdir``, in the foreground as our child. With
    ``access_log``, one line per request there (status, Range header, body bytes): see count_requests."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    temp = workdir / "temp"
    temp.mkdir(exist_ok=True)
    # Workers run as this user: when started as root they would otherwise drop to nobody, who may not read
    # the work directory (nginx ignores the directive for other users).
    user = pwd.getpwuid(os.getuid()).pw_name
    temp_paths = "\n".join(
        f"  {kind}_temp_path {temp}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    logging = f"{access_log} counted" if access_log else "off"
    config = workdir / "nginx.conf"
    config.write_text(
        f"""user {user};
daemon off;
worker_processes 2;
pid {workdir}/nginx.pid;
error_log {log_dir}/nginx.log;
events {{ worker_connections 1024; }}
http {{
  log_format counted '$status "$http_range" $body_bytes_sent';
  access_log {logging};
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  types {{ application/json json; }}
  default_type application/octet-stream;
{temp_paths}
  server {{
    listen {HOST}:{port};
    root {root};
    add_header Access-Control-Allow-Origin * always;
  }}
}}
"""
    )
    command = [nginx_binary(), "-p", str(workdir), "-c", str(config), "-e", str(log_dir / "nginx.log")]
    return Server("nginx", command, log_dir / "nginx-stderr.log", port)


@dataclass(frozen=True)
class Requests:
    count: int
    nbytes: int  # response bodies


def count_requests(access_log: Path, since: int = 0) -> tuple[Requests, int]:
    """The requests nginx logged from byte ``since`` of its access log on, and the log's end (the next
    ``since``). nginx writes each line when the request completes, unbuffered."""
    with open(access_log, "rb") as log:
        log.seek(since)
        lines = log.read().splitlines()
        end = log.tell()
    return Requests(len(lines), sum(int(line.rsplit(b" ", 1)[1]) for line in lines)), end


@dataclass(frozen=True)
class Load:
    requests_per_s: float
    p50_ms: float
    p99_ms: float


def wrk(url: str, seconds: int) -> Load:
    """wrk with CONNECTIONS connections on one URL; any non-2xx answer is an error, not a fast row."""
    result = subprocess.run(
        ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", url],
        capture_output=True,
        text=True,
        check=False,
    )
    out = result.stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if result.returncode != 0 or errors or "Requests/sec" not in out:
        raise RuntimeError(f"wrk on {url} failed: {(result.stderr or out).strip()}")

    def millis(label: str) -> float:
        found = re.search(rf"{label}\s+([\d.]+)(us|ms|s)\b", out)
        if found is None:
            raise RuntimeError(f"wrk printed no {label} latency for {url}")
        return float(found.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[found.group(2)]

    requests = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert requests is not None
    return Load(float(requests.group(1)), millis("50%"), millis("99%"))
