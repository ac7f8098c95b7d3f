"""A fault-injecting HTTP proxy on 127.0.0.1 in front of one upstream server (nginx, moto's S3, ...).

It passes every request through unchanged (any method, every header including Host, so that S3 signatures
still match, and the body), and can, per request, by a schedule the test programs:

- drop the connection before answering (``Drop()``),
- answer an error status itself (``Status(503)``; also 500, 502, 504, 429, ...),
- wait before passing the request on (``Delay(seconds)``; ``latency=`` adds a fixed delay to every request,
  as the benchmarks' 20 ms),
- send the response's headers and part of its body, then reset the connection (``Reset(after_bytes)``: a
  close with SO_LINGER 0 sends an RST).

It counts requests by method and path (``count``) and records them in order (``requests``), for request
budgets. Threads only (one per client connection), usable outside pytest::

    with FaultProxy("http://127.0.0.1:8080", latency=0.02) as proxy:
        read(proxy.url + "/image.tif")

Nothing can hang: every socket has a timeout, delays wake when the proxy stops, and stopping closes every
connection and joins every thread. Bodies stream through in blocks, never held whole in memory.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import http.client
import http.server
import socket
import struct
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

SOCKET_TIMEOUT_S = 60.0
BLOCK_BYTES = 256 * 1024
# Headers that describe one connection, not the request or response: never passed on.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "expect",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


@dataclass(frozen=True)
class Drop:
    """Close the connection without answering (the client sees the server disconnect)."""


@dataclass(frozen=True)
class Status:
    """Answer this status (with a short body) instead of passing the request on."""

    code: int = 503


@dataclass(frozen=True)
class Delay:
    """Wait this long, then pass the request on."""

    seconds: float


@dataclass(frozen=True)
class Reset:
    """Pass the request on, send the response's headers and its first ``after_bytes`` body bytes (the whole
    body if it is shorter), then reset the connection (RST)."""

    after_bytes: int = 0


Fault = Drop | Status | Delay | Reset


@dataclass(frozen=True)
class Seen:
    """One request the proxy received, with the fault it met (None: passed through unchanged)."""

    method: str
    path: str  # without the query
    target: str  # as requested: path and query
    range: str | None
    fault: Fault | None


@dataclass
class _Rule:
    fault: Fault | None
    method: str | None
    path: str | None

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (self.path is None or self.path == path)


class FaultProxy:
    """See the module docstring. ``upstream`` is ``http://host:port``; ``url`` is the proxy's own base URL
    (the same paths reach the same upstream objects)."""

    def __init__(self, upstream: str, latency: float = 0.0, timeout: float = SOCKET_TIMEOUT_S) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        if parsed.scheme != "http" or not parsed.hostname:
            raise ValueError(f"the upstream must be an http:// URL, not {upstream!r}")
        self.upstream = (parsed.hostname, parsed.port or 80)
        self.latency = latency
        self.timeout = timeout
        self.requests: list[Seen] = []
        self._rules: collections.deque[_Rule] = collections.deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._handlers: set[_Handler] = set()
        self._server = _Server(self)
        self.port = int(self._server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fault-proxy", daemon=True
        )

    # --- schedule -------------------------------------------------------------------------------------------

    def inject(self, *faults: Fault | None, method: str | None = None, path: str | None = None) -> None:
        """Meet the next requests (of ``method`` and ``path``, if given) with these faults, one each, in
        order; None passes one request through. Requests that no queued fault matches pass through."""
        with self._lock:
            self._rules.extend(_Rule(fault, method, path) for fault in faults)

    def pending(self) -> int:
        """How many injected faults no request has met yet."""
        with self._lock:
            return len(self._rules)

    def clear(self) -> None:
        """Forget the faults not met yet, the recorded requests and the counts."""
        with self._lock:
            self._rules.clear()
            self.requests.clear()

    def count(self, method: str | None = None, path: str | None = None) -> int:
        """How many requests (of ``method``, for ``path``, if given) the proxy received."""
        with self._lock:
            return sum(
                (method is None or seen.method == method) and (path is None or seen.path == path)
                for seen in self.requests
            )

    def _next_fault(self, method: str, target: str, range_header: str | None) -> Fault | None:
        path = urllib.parse.urlsplit(target).path
        with self._lock:
            fault = None
            for rule in self._rules:
                if rule.matches(method, path):
                    fault = rule.fault
                    self._rules.remove(rule)
                    break
            self.requests.append(Seen(method, path, target, range_header, fault))
            return fault

    # --- lifecycle ------------------------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, close every connection (waking threads that wait on them) and join every thread."""
        self._stopping.set()
        if self._thread.is_alive():
            self._server.shutdown()
        with self._lock:
            handlers = list(self._handlers)
        for handler in handlers:  # wake the threads that wait on a client or on the upstream
            _shut(handler.connection)
            upstream = handler.upstream
            if upstream is not None and upstream.sock is not None:
                _shut(upstream.sock)
        self._server.server_close()  # joins the connection threads (block_on_close)
        self._thread.join(self.timeout)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _track(self, handler: _Handler, active: bool) -> None:
        with self._lock:
            if active:
                self._handlers.add(handler)
            else:
                self._handlers.discard(handler)

    def sleep(self, seconds: float) -> None:
        """Wait, but no longer than until the proxy stops."""
        if seconds > 0:
            self._stopping.wait(seconds)


def _shut(connection: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by its thread
        connection.shutdown(socket.SHUT_RDWR)


def _reset(connection: socket.socket) -> None:
    """Close with an RST rather than a FIN: SO_LINGER on with a zero timeout."""
    with contextlib.suppress(OSError):
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    connection.close()


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True
    request_queue_size = 1024  # clients that fire many requests at once must not see refused connections

    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers
    server: _Server

    def setup(self) -> None:
        self.proxy = self.server.proxy
        self.timeout = self.proxy.timeout  # every client socket
        self.upstream: http.client.HTTPConnection | None = None
        super().setup()
        self.proxy._track(self, True)

    def finish(self) -> None:
        self.proxy._track(self, False)
        if self.upstream is not None:
            self.upstream.close()
        with contextlib.suppress(OSError):  # the connection was dropped or reset on purpose
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests read ``requests``; nothing on stderr

    def handle_one_request(self) -> None:
        try:
            self.raw_requestline = self.rfile.readline(65537)
        except OSError:  # timed out, or the proxy stops
            self.close_connection = True
            return
        if not self.raw_requestline or self.proxy._stopping.is_set():
            self.close_connection = True
            return
        if not self.parse_request():
            return
        try:
            self._answer()
        except OSError:  # the client or the upstream went away, or the proxy stops
            self.close_connection = True

    def _answer(self) -> None:
        body = self._request_body()
        fault = self.proxy._next_fault(self.command, self.path, self.headers.get("Range"))
        self.proxy.sleep(self.proxy.latency)
        if isinstance(fault, Delay):
            self.proxy.sleep(fault.seconds)
        if self.proxy._stopping.is_set() or isinstance(fault, Drop):
            self._abort(reset=False)
            return
        if isinstance(fault, Status):
            self._answer_status(fault.code)
            return
        response = self._forward(body)
        self._relay(response, fault.after_bytes if isinstance(fault, Reset) else None)

    def _request_body(self) -> bytes | None:
        """The request's body (None: it has none, not even an empty one), read whole: requests are small."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return b"".join(_chunks(self.rfile.readline, self.rfile.read))
        length = self.headers.get("Content-Length")
        return None if length is None else self.rfile.read(int(length))

    def _abort(self, reset: bool) -> None:
        self.close_connection = True
        self.rfile.close()
        self.wfile.close()
        if reset:
            _reset(self.connection)
        else:
            _shut(self.connection)
            self.connection.close()

    def _answer_status(self, code: int) -> None:
        body = f"injected {code}\n".encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        if code in (429, 503):
            self.send_header("Retry-After", "0")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _forward(self, body: bytes | None) -> http.client.HTTPResponse:
        if self.upstream is None:
            self.upstream = http.client.HTTPConnection(*self.proxy.upstream, timeout=self.proxy.timeout)
        upstream = self.upstream
        upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for name, value in self.headers.items():
            if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                upstream.putheader(name, value)
        if body is not None:
            upstream.putheader("Content-Length", str(len(body)))
        upstream.endheaders(body)
        return upstream.getresponse()

    def _relay(self, response: http.client.HTTPResponse, reset_after: int | None) -> None:
        """Send the upstream's response on, its body in blocks; with ``reset_after``, only that many body
        bytes, then an RST."""
        length = response.getheader("Content-Length")
        has_body = self.command != "HEAD" and response.status not in (204, 304) and response.status >= 200
        self.send_response_only(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        chunked = has_body and length is None  # framed anew: the upstream's framing is hop-by-hop
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if not has_body:
            response.read()
            return
        sent = 0
        buffer = memoryview(bytearray(BLOCK_BYTES))
        while True:
            limit = BLOCK_BYTES if reset_after is None else min(BLOCK_BYTES, reset_after - sent)
            size = response.readinto(buffer[:limit]) if limit > 0 else 0
            if reset_after is not None and (size == 0 or sent + size >= reset_after):
                self.wfile.write(buffer[:size])
                self._abort(reset=True)
                self._drop_upstream()  # the rest of its response is never read
                return
            if size == 0:
                break
            if chunked:
                self.wfile.write(f"{size:x}\r\n".encode())
            self.wfile.write(buffer[:size])
            if chunked:
                self.wfile.write(b"\r\n")
            sent += size
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
        if response.will_close:
            self._drop_upstream()

    def _drop_upstream(self) -> None:
        if self.upstream is not None:
            self.upstream.close()
            self.upstream = None


def _chunks(readline: Callable[[int], bytes], read: Callable[[int], bytes]) -> Iterable[bytes]:
    """The data of a chunked request body (trailers skipped)."""
    while True:
        size = int(readline(1024).split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while readline(1024) not in (b"\r\n", b"\n", b""):
                pass
            return
        yield read(size)
        read(2)  # the CRLF after the chunk


def main() -> None:
    """Run a delaying proxy from the command line, until interrupted (for benchmarks by hand)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("upstream", help="http://host:port of the server to put the proxy in front of")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    arguments = parser.parse_args()
    with FaultProxy(arguments.upstream, latency=arguments.latency) as proxy:
        print(proxy.url, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
