"""``zarrfs serve``: open the source, listen, print the URL, serve until SIGINT or SIGTERM.

The server library is aiohttp's low-level server (one handler, no router). Measured on this machine with the
same site behind each (wrk, 16 connections), uvicorn (httptools, uvloop) served about 10% more than aiohttp
and granian 20% less, all above the targets (1 GB/s of chunks, 2,000 metadata requests/s); aiohttp was chosen
for what the others lack or leave to a proxy: limits on request line, header size and count, closing
half-sent requests, and cancelling the handler of a client that went away (README, "Serving over HTTP")."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from zarrfs.core import ServeOptions, open_dataset
from zarrfs.core.requests import DEFAULT_TIMEOUT_S, RequestPolicy
from zarrfs.errors import ZarrfsError
from zarrfs.frontends.http.files import ServedFiles
from zarrfs.frontends.http.index import Index
from zarrfs.frontends.http.routes import Access, Site
from zarrfs.sources.identity import identity_of

log = logging.getLogger("zarrfs")

# Request line and each header at most this long (longer: 400), and at most this many headers.
MAX_LINE_BYTES = 8192
MAX_FIELD_BYTES = 8192
MAX_HEADERS = 64
# An idle keep-alive connection is closed after this long: idle clients cannot pile up connections.
IDLE_TIMEOUT_S = 15.0
# Viewers open many connections at once (zarrita.js, tensorstore): a deep accept queue refuses none.
BACKLOG = 1024
# On SIGINT/SIGTERM, requests under way get this long to finish.
SHUTDOWN_TIMEOUT_S = 5.0


@dataclass
class HttpSpec:
    source: str
    options: ServeOptions = field(default_factory=ServeOptions)
    host: str = "127.0.0.1"
    port: int = 8000
    cors_origin: str = "*"
    token: str | None = None
    request_timeout: float = DEFAULT_TIMEOUT_S


def url_of(host: str, port: int, token: str | None) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


def make_token() -> str:
    return secrets.token_urlsafe(24)


def serve_http(spec: HttpSpec, announce: Callable[[str], None] = print) -> None:
    """Serve until SIGINT or SIGTERM; ``announce`` gets the URL once connections are accepted. Raises
    ZarrfsError for a source that cannot be served or an address that cannot be listened on."""
    dataset = open_dataset(spec.source, spec.options)
    try:
        # The ETags of everything served name the identity of every file the source reads.
        identities = [identity_of(path) for path in dataset.source.files()]
        files = ServedFiles(dataset)
        policy = RequestPolicy(files, spec.request_timeout)
        site = Site(
            files,
            policy,
            Index(dataset, sorted(files.precomputed)),
            f"{identities}\0{spec.options}",
            max(identity.mtime_ns for identity in identities) / 1e9,
            Access(spec.cors_origin, spec.token),
        )
        try:
            asyncio.run(_listen(site, spec, announce))
        finally:
            policy.close()
    finally:
        dataset.close()


async def _listen(site: Site, spec: HttpSpec, announce: Callable[[str], None]) -> None:
    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        reply = await site.respond(request.method, request.raw_path, request.headers)
        response = web.Response(status=reply.status, headers=reply.headers)
        if reply.body:
            response.body = reply.body
        return response

    server = web.Server(
        handle,
        handler_cancellation=True,  # a client that goes away gives its request up (and its work)
        access_log=None,  # a logged request line would show a token
        keepalive_timeout=IDLE_TIMEOUT_S,
        max_line_size=MAX_LINE_BYTES,
        max_field_size=MAX_FIELD_BYTES,
        max_headers=MAX_HEADERS,
    )
    runner = web.ServerRunner(server, handle_signals=False)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        tcp = web.TCPSite(runner, spec.host, spec.port, backlog=BACKLOG, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        try:
            await tcp.start()
        except OSError as error:  # the port is taken, the host is not ours, or no such host
            reason = os.strerror(error.errno) if error.errno else str(error)
            raise ZarrfsError(f"cannot listen on {spec.host}:{spec.port}: {reason}") from None
        port = _bound_port(runner, spec.port)
        announce(url_of(spec.host, port, spec.token))
        log.info("serving %s at %s", spec.source, url_of(spec.host, port, None))
        await stop.wait()
        log.info("stopping")
    finally:
        await runner.cleanup()


def _bound_port(runner: web.ServerRunner, asked: int) -> int:
    """The port listened on (the one the system chose for ``--port 0``)."""
    for address in runner.addresses:
        if isinstance(address, tuple):
            return int(address[1])
    return asked


def check_host(host: str) -> None:
    """ZarrfsError unless ``host`` resolves (before the source is opened, which may take long)."""
    try:
        socket.getaddrinfo(host, None)
    except (socket.gaierror, UnicodeError) as error:
        raise ZarrfsError(f"cannot listen on {host}: {getattr(error, 'strerror', None) or error}") from None


def run(spec: HttpSpec) -> None:
    """The ``zarrfs serve`` command: the URL on stdout, the log on stderr."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s zarrfs %(levelname)s %(message)s")
    check_host(spec.host)

    def announce(url: str) -> None:
        print(f"zarrfs: serving {os.path.basename(spec.source)} at {url}", flush=True)

    serve_http(spec, announce)
