"""``zarrfs serve`` in a subprocess on 127.0.0.1 with a free port, always stopped; raw HTTP requests."""

from __future__ import annotations

import http.client
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT_S = 60.0
_URL = re.compile(r"at (http://\S+)")


@dataclass
class Served:
    url: str  # as printed, with its token if any
    host: str
    port: int
    process: subprocess.Popen[str]

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, timeout: float = 30.0
    ) -> tuple[int, dict[str, str], bytes]:
        """One request on a fresh connection: status, headers (lower-case names) and body."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            connection.putrequest(method, path, skip_host=False, skip_accept_encoding=True)
            for name, value in (headers or {}).items():
                connection.putheader(name, value)
            connection.endheaders()
            response = connection.getresponse()
            body = response.read()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, body
        finally:
            connection.close()


@contextmanager
def serving(source: Path | str, *options: str, log: Path | None = None) -> Iterator[Served]:
    """Serve ``source`` until the block ends, then stop it with SIGTERM (SIGKILL if it does not stop)."""
    stderr = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115  (closed below)
    process = subprocess.Popen(
        [sys.executable, "-m", "zarrfs", "serve", str(source), "--port", "0", *options],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(process.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + START_TIMEOUT_S
        line = ""
        while not line:
            assert time.monotonic() < deadline, "zarrfs serve printed no URL"
            if selector.select(timeout=0.5):
                line = process.stdout.readline()
                assert line, f"zarrfs serve exited ({process.wait()}) before serving"
        match = _URL.search(line)
        assert match, line
        url = match.group(1)
        host, port = re.match(r"http://([^:/]+):(\d+)/", url).groups()  # type: ignore[union-attr]
        yield Served(url, host, int(port), process)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if log:
            stderr.close()  # type: ignore[union-attr]
