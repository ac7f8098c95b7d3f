"""A TCP proxy that adds a fixed latency, for the remote rows (issue 15): what a client sees of a server
``--latency-ms`` away, with unlimited bandwidth.

    python -m scripts.bench.proxy --upstream 127.0.0.1:8080 --latency-ms 20

Prints ``http://127.0.0.1:PORT`` once it listens, then forwards every connection to the upstream until
SIGTERM. Each piece of data a client sends (a request) reaches the upstream ``latency`` later, and a new
connection reaches it ``latency`` later (its handshake): each request round trip costs one latency, answers
flow back undelayed. A process of its own, so that its forwarding never competes with the client's threads
for one interpreter.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

BUFFER = 1 << 20


async def _delayed_pump(
    reader: asyncio.StreamReader, upstream: asyncio.Future[asyncio.StreamWriter], latency: float
) -> None:
    """Client to upstream: each piece is sent ``latency`` after it arrived, in order (pieces arriving while
    the upstream connection is still being made wait for it)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def send() -> None:
        writer = await upstream
        # A request sent during the handshake leaves only once it is done: the handshake's round trip first,
        # then the request's own.
        earliest = loop.time() + latency
        while True:
            due, data = await queue.get()
            if not data:
                break
            await asyncio.sleep(max(0.0, due - loop.time(), earliest - loop.time()))
            writer.write(data)
            await writer.drain()
        with contextlib.suppress(OSError):
            writer.write_eof()

    sender = asyncio.create_task(send())
    try:
        while data := await reader.read(BUFFER):
            queue.put_nowait((loop.time() + latency, data))
    finally:
        queue.put_nowait((0.0, b""))
        if not upstream.done():  # never connected: nothing to send
            sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError):
            await sender


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(BUFFER):
        writer.write(data)
        await writer.drain()
    with contextlib.suppress(OSError):
        writer.write_eof()


async def _serve_connection(
    client_reader: asyncio.StreamReader,
    client_writer: asyncio.StreamWriter,
    address: tuple[str, int],
    latency: float,
) -> None:
    upstream: asyncio.Future[asyncio.StreamWriter] = asyncio.get_running_loop().create_future()
    requests = asyncio.create_task(_delayed_pump(client_reader, upstream, latency))
    upstream_writer: asyncio.StreamWriter | None = None
    try:
        await asyncio.sleep(latency)  # the handshake's round trip
        upstream_reader, upstream_writer = await asyncio.open_connection(*address, limit=BUFFER)
        upstream.set_result(upstream_writer)
        await asyncio.gather(requests, _pump(upstream_reader, client_writer))
    except (OSError, ConnectionError):
        pass  # either side closed or reset: both are closed below
    finally:
        requests.cancel()
        for writer in (client_writer, upstream_writer):
            if writer is not None:
                writer.close()


async def serve(upstream: tuple[str, int], latency: float, host: str = "127.0.0.1") -> None:
    server = await asyncio.start_server(
        lambda r, w: _serve_connection(r, w, upstream, latency), host, 0, limit=BUFFER
    )
    port = server.sockets[0].getsockname()[1]
    print(f"http://{host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--upstream", required=True, help="HOST:PORT to forward to")
    parser.add_argument("--latency-ms", type=float, required=True, help="added per request round trip")
    args = parser.parse_args()
    host, port = args.upstream.rsplit(":", 1)
    asyncio.run(serve((host, int(port)), args.latency_ms / 1000))


if __name__ == "__main__":
    main()
