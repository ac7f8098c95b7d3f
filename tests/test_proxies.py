"""The fault-injecting proxy of tests/proxies.py: it passes requests through unchanged, injects each fault as
scheduled, counts requests, and never hangs."""

from __future__ import annotations

import hashlib
import http.client
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.proxies import Delay, Drop, FaultProxy, Reset, Seen, Status
from tests.servers import moto_server, nginx_server

SIZE = 2_000_000


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, bytes]]:
    root = tmp_path_factory.mktemp("served")
    data = os.urandom(SIZE)
    (root / "blob.bin").write_bytes(data)
    with nginx_server(root) as url:
        yield url, data


def request(
    url: str, method: str = "GET", path: str = "/blob.bin", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def test_ranges_pass_through_unchanged(served: tuple[str, bytes]) -> None:
    upstream, data = served
    with FaultProxy(upstream) as proxy:
        status, headers, body = request(proxy.url, headers={"Range": "bytes=100-1099"})
        assert (status, body) == (206, data[100:1100])
        assert headers["content-range"] == f"bytes 100-1099/{SIZE}"
        assert headers["etag"] == request(upstream, "HEAD")[1]["etag"]
        status, headers, body = request(proxy.url, "HEAD")
        assert (status, headers["content-length"], body) == (200, str(SIZE), b"")
        assert request(proxy.url, path="/missing")[0] == 404
        assert proxy.requests == [
            Seen("GET", "/blob.bin", "/blob.bin", "bytes=100-1099", None),
            Seen("HEAD", "/blob.bin", "/blob.bin", None, None),
            Seen("GET", "/missing", "/missing", None, None),
        ]
        assert proxy.count("GET") == 2 and proxy.count(path="/blob.bin") == 2


def test_one_kept_alive_connection_serves_many_requests(served: tuple[str, bytes]) -> None:
    upstream, data = served
    with FaultProxy(upstream) as proxy:
        connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        for start in range(0, 100_000, 10_000):
            connection.request("GET", "/blob.bin", headers={"Range": f"bytes={start}-{start + 9_999}"})
            assert connection.getresponse().read() == data[start : start + 10_000]
        connection.close()
        assert proxy.count() == 10


def test_every_fault_as_scheduled(served: tuple[str, bytes]) -> None:
    upstream, data = served
    with FaultProxy(upstream) as proxy:
        proxy.inject(Status(503), Status(504), None, Status(429), path="/blob.bin")
        assert request(proxy.url, path="/missing")[0] == 404  # another path: not met by those faults
        assert request(proxy.url)[0] == 503
        assert request(proxy.url)[0] == 504
        assert request(proxy.url)[0] == 200
        status, headers, _ = request(proxy.url)
        assert (status, headers["retry-after"]) == (429, "0")
        assert request(proxy.url)[0] == 200
        assert proxy.pending() == 0

        proxy.inject(Drop())
        with pytest.raises(http.client.RemoteDisconnected):
            request(proxy.url)

        proxy.inject(Reset(after_bytes=300_000))
        connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        connection.request("GET", "/blob.bin")
        response = connection.getresponse()
        assert (response.status, response.getheader("Content-Length")) == (200, str(SIZE))
        received = b""
        with pytest.raises(ConnectionResetError):
            while chunk := response.read1(65536):
                received += chunk
        connection.close()
        assert data.startswith(received) and len(received) <= 300_000

        proxy.inject(Delay(0.5))
        started = time.monotonic()
        assert request(proxy.url)[2] == data
        assert time.monotonic() - started >= 0.5


def test_latency_is_added_to_every_request(served: tuple[str, bytes]) -> None:
    upstream, _ = served
    with FaultProxy(upstream, latency=0.02) as proxy:
        started = time.monotonic()
        for _ in range(10):
            request(proxy.url, headers={"Range": "bytes=0-9"})
        assert time.monotonic() - started >= 0.2


def test_large_bodies_stream_through(served: tuple[str, bytes], tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.mkdir()
    chunk = os.urandom(1024 * 1024)
    with open(big / "big.bin", "wb") as file:
        for _ in range(128):
            file.write(chunk)
    expected = hashlib.sha256(chunk * 128).hexdigest()
    with nginx_server(big) as upstream, FaultProxy(upstream) as proxy:
        connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
        started = time.monotonic()
        connection.request("GET", "/big.bin")
        response = connection.getresponse()
        digest = hashlib.sha256()
        while block := response.read(1024 * 1024):
            digest.update(block)
        seconds = time.monotonic() - started
        connection.close()
    assert digest.hexdigest() == expected
    print(f"128 MiB through the proxy in {seconds:.2f} s ({128 / seconds:.0f} MiB/s)")


class _Echo(http.server.BaseHTTPRequestHandler):
    """An upstream that answers what it received (method, target, Host, body), without Content-Length."""

    protocol_version = "HTTP/1.0"  # the body ends when the connection closes

    def handle_one_request(self) -> None:
        self.raw_requestline = self.rfile.readline(65537)
        if not self.raw_requestline or not self.parse_request():
            self.close_connection = True
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        answer = {
            "method": self.command,
            "target": self.path,
            "host": self.headers["Host"],
            "signature": self.headers.get("Authorization"),
            "body": body.decode(),
            "chunked": self.headers.get("Transfer-Encoding"),
        }
        self.send_response(201)
        self.end_headers()
        self.wfile.write(json.dumps(answer).encode())
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


def test_any_method_header_and_body_passes_through() -> None:
    echo = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=echo.serve_forever, daemon=True)
    thread.start()
    try:
        with FaultProxy(f"http://127.0.0.1:{echo.server_address[1]}") as proxy:
            connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
            headers = {"Host": "bucket.s3.example", "Authorization": "AWS4-HMAC-SHA256 Signature=abc"}
            connection.request("PROPPATCH", "/a/b?x=1&y=2", body=b"payload", headers=headers)
            response = connection.getresponse()
            assert response.status == 201 and response.getheader("Transfer-Encoding") == "chunked"
            assert json.loads(response.read()) == {
                "method": "PROPPATCH",
                "target": "/a/b?x=1&y=2",
                "host": "bucket.s3.example",  # as the client sent it: S3 signatures cover it
                "signature": "AWS4-HMAC-SHA256 Signature=abc",
                "body": "payload",
                "chunked": None,
            }
            connection.request(
                "POST", "/upload", body=iter([b"part one, ", b"part two"]), encode_chunked=True
            )
            response = connection.getresponse()
            assert json.loads(response.read())["body"] == "part one, part two"
            connection.close()
            assert [(seen.method, seen.target) for seen in proxy.requests] == [
                ("PROPPATCH", "/a/b?x=1&y=2"),
                ("POST", "/upload"),
            ]
    finally:
        echo.shutdown()
        echo.server_close()


def test_an_s3_client_works_through_the_proxy() -> None:
    import boto3  # with moto[server], of the test extra

    with moto_server() as endpoint, FaultProxy(endpoint) as proxy:
        client = boto3.client(
            "s3",
            endpoint_url=proxy.url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        client.create_bucket(Bucket="images")
        data = os.urandom(100_000)
        client.put_object(Bucket="images", Key="a/blob.bin", Body=data)
        got = client.get_object(Bucket="images", Key="a/blob.bin", Range="bytes=10-99")["Body"].read()
        assert got == data[10:100]
        listed = client.list_objects_v2(Bucket="images", Prefix="a/")["Contents"]
        assert [item["Key"] for item in listed] == ["a/blob.bin"]
        assert proxy.count("PUT", "/images/a/blob.bin") == 1 and proxy.count("GET", "/images/a/blob.bin") == 1


def test_stopping_never_hangs(served: tuple[str, bytes]) -> None:
    upstream, _ = served
    proxy = FaultProxy(upstream, timeout=60).start()
    idle = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)  # connected, sends nothing
    proxy.inject(Delay(60))
    failures: list[BaseException] = []

    def waiting_client() -> None:
        try:
            request(proxy.url)
        except BaseException as error:
            failures.append(error)

    client = threading.Thread(target=waiting_client)
    client.start()
    time.sleep(0.3)
    started = time.monotonic()
    proxy.stop()
    assert time.monotonic() - started < 2
    client.join(5)
    assert not client.is_alive() and failures  # the delayed request ends, unanswered
    assert idle.recv(1) == b""  # the idle connection was closed
    idle.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=2)


def test_latency_delays_concurrent_requests_side_by_side(served: tuple[str, bytes]) -> None:
    upstream, data = served
    with FaultProxy(upstream, latency=0.3) as proxy:
        results: list[bytes] = []
        threads = [threading.Thread(target=lambda: results.append(request(proxy.url)[2])) for _ in range(10)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert time.monotonic() - started < 1.5  # not 10 x 0.3 s in a row
        assert results == [data] * 10


def test_the_proxy_runs_from_the_command_line(served: tuple[str, bytes]) -> None:
    upstream, data = served
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.proxies", upstream, "--latency", "0.05"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        started = time.monotonic()
        assert request(url, headers={"Range": "bytes=5-9"})[2] == data[5:10]
        assert time.monotonic() - started >= 0.05
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(10) == 0


def test_stopping_never_hangs_on_an_upstream_that_does_not_answer() -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts connections (backlog), never answers
        proxy = FaultProxy(f"http://127.0.0.1:{silent.getsockname()[1]}", timeout=60).start()
        failures: list[BaseException] = []

        def waiting_client() -> None:
            try:
                request(proxy.url)
            except BaseException as error:
                failures.append(error)

        client = threading.Thread(target=waiting_client)
        client.start()
        time.sleep(0.5)
        started = time.monotonic()
        proxy.stop()
        assert time.monotonic() - started < 2
        client.join(5)
        assert not client.is_alive() and failures  # unanswered
