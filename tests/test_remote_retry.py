"""Retries of remote reads (zarrfs/sources/remote/retry.py) against real clients and servers: fsspec's
HTTPFileSystem (aiohttp) reading from nginx, s3fs (aiobotocore) from moto's S3, each through the
fault-injecting proxy of tests/proxies.py. The oracle is the file's own bytes."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import fsspec
import pytest
from fsspec.asyn import sync

from tests.proxies import Delay, Drop, FaultProxy, Reset, Status
from tests.servers import moto_server, nginx_server
from zarrfs import cancellation
from zarrfs.sources.remote.identity import ObjectChangedError
from zarrfs.sources.remote.retry import (
    S3_CONFIG_WITHOUT_RETRIES,
    Backoff,
    GivenUp,
    RemoteDeadline,
    RemoteUnavailable,
    retrying,
    status_of,
)
from zarrfs.sources.remote.urls import redact, redact_text

SIZE = 3_000_000
FAST = Backoff(first_s=0.02, max_s=0.2)


@pytest.fixture(scope="module")
def blob(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    root = tmp_path_factory.mktemp("served")
    data = os.urandom(SIZE)
    (root / "blob.bin").write_bytes(data)
    return root, data


@pytest.fixture(scope="module")
def nginx(blob: tuple[Path, bytes]) -> Iterator[str]:
    with nginx_server(blob[0]) as url:
        yield url


@pytest.fixture
def proxy(nginx: str) -> Iterator[FaultProxy]:
    with FaultProxy(nginx, timeout=20) as running:
        yield running


@pytest.fixture
def http_fs() -> Any:
    return fsspec.filesystem("http", skip_instance_cache=True)


def read(
    fs: Any,
    request: Callable[[], Awaitable[Any]],
    timeout: float = 20.0,
    backoff: Backoff = FAST,
    what: str = "GET blob",
) -> Any:
    """``request`` retried on fsspec's loop, as a source's read does, within ``timeout`` seconds."""
    return sync(fs.loop, retrying, request, what, time.monotonic() + timeout, backoff)


def cat(fs: Any, url: str, start: int, end: int, **kwargs: Any) -> Callable[[], Awaitable[bytes]]:
    return lambda: fs._cat_file(url, start=start, end=end, **kwargs)


@pytest.mark.parametrize("status", [503, 500, 502, 504, 429])
def test_http_transient_statuses_are_retried_until_success(
    proxy: FaultProxy, http_fs: Any, blob: tuple[Path, bytes], status: int, caplog: pytest.LogCaptureFixture
) -> None:
    proxy.inject(Status(status), Status(status))
    with caplog.at_level(logging.WARNING, "zarrfs.sources.remote.retry"):
        data = read(http_fs, cat(http_fs, proxy.url + "/blob.bin", 1000, 5000))
    assert data == blob[1][1000:5000]
    assert proxy.count("GET", "/blob.bin") == 3  # two failures, two retries
    retries = [record.getMessage() for record in caplog.records]
    assert len(retries) == 2, retries
    assert f"failed (HTTP {status}); retry 1 in" in retries[0]
    assert f"failed (HTTP {status}); retry 2 in" in retries[1]


def test_http_reset_in_the_middle_of_a_body_is_retried(
    proxy: FaultProxy, http_fs: Any, blob: tuple[Path, bytes]
) -> None:
    proxy.inject(Reset(after_bytes=200_000))
    data = read(http_fs, cat(http_fs, proxy.url + "/blob.bin", 0, 2_000_000))
    assert data == blob[1][:2_000_000]
    assert [seen.fault for seen in proxy.requests] == [Reset(200_000), None]


def test_http_dropped_connections_are_retried(
    proxy: FaultProxy, http_fs: Any, blob: tuple[Path, bytes]
) -> None:
    proxy.inject(Drop(), Drop(), Drop())
    data = read(http_fs, cat(http_fs, proxy.url + "/blob.bin", 10, 20))
    assert data == blob[1][10:20]
    assert proxy.count() == 4 and proxy.pending() == 0


def test_http_delays_past_the_deadline_end_in_a_deadline_error_in_bounded_time(
    proxy: FaultProxy, http_fs: Any
) -> None:
    proxy.inject(*[Delay(30)] * 10)
    started = time.monotonic()
    with pytest.raises(RemoteDeadline, match="no answer within the time limit"):
        read(http_fs, cat(http_fs, proxy.url + "/blob.bin", 0, 10), timeout=1.0)
    assert time.monotonic() - started < 2.5


def test_http_persistent_503_fails_within_the_deadline_as_unavailable(
    proxy: FaultProxy, http_fs: Any
) -> None:
    proxy.inject(*[Status(503)] * 1000)
    started = time.monotonic()
    with pytest.raises(RemoteUnavailable) as raised:
        read(http_fs, cat(http_fs, proxy.url + "/blob.bin", 0, 10), timeout=1.0)
    assert time.monotonic() - started < 1.5
    assert not isinstance(raised.value, RemoteDeadline)
    assert " failed " in str(raised.value)
    assert "times within the time limit (last: HTTP 503)" in str(raised.value)
    assert proxy.count() >= 3


def test_http_final_statuses_are_not_retried(proxy: FaultProxy, http_fs: Any) -> None:
    with pytest.raises(FileNotFoundError):  # nginx's own 404
        read(http_fs, cat(http_fs, proxy.url + "/missing.bin", 0, 10))
    assert proxy.count() == 1
    proxy.inject(Status(403))
    with pytest.raises(Exception) as raised:  # aiohttp's ClientResponseError, unchanged
        read(http_fs, cat(http_fs, proxy.url + "/blob.bin", 0, 10))
    assert status_of(raised.value) == 403
    assert proxy.count() == 2  # fsspec's HEAD and GET of one attempt: no retry
    assert proxy.count() == 2


def test_http_a_failed_precondition_is_the_object_changed_and_not_retried(
    proxy: FaultProxy, http_fs: Any, blob: tuple[Path, bytes]
) -> None:
    url = proxy.url + "/blob.bin"
    etag = http_fs.info(url)["ETag"]
    pinned = read(http_fs, cat(http_fs, url, 0, 10, headers={"If-Match": etag}))
    assert pinned == blob[1][:10]
    proxy.clear()
    with pytest.raises(ObjectChangedError, match="the object changed since it was opened"):  # nginx's own 412
        read(http_fs, cat(http_fs, url, 0, 10, headers={"If-Match": '"another-etag"'}))
    assert proxy.count() == 1


def test_a_given_up_request_stops_retrying_at_once(proxy: FaultProxy, http_fs: Any) -> None:
    proxy.inject(*[Delay(30)] * 10)
    token = cancellation.CancelToken()
    outcome: list[BaseException | None] = []

    def work() -> None:
        with cancellation.working_for(token):
            try:
                read(http_fs, cat(http_fs, proxy.url + "/blob.bin", 0, 10), timeout=30)
                outcome.append(None)
            except BaseException as error:
                outcome.append(error)

    thread = threading.Thread(target=work)
    thread.start()
    time.sleep(0.3)
    cancelled_at = time.monotonic()
    token.cancel()
    thread.join(5)
    assert not thread.is_alive()
    assert time.monotonic() - cancelled_at < 0.5
    assert isinstance(outcome[0], GivenUp)


def test_credentials_never_appear_in_retry_log_lines(
    proxy: FaultProxy, http_fs: Any, blob: tuple[Path, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    host = proxy.url.removeprefix("http://")
    url = (
        f"http://reader:hunter2secret@{host}/blob.bin?X-Amz-Signature=sig0123456789&X-Amz-Credential=AKIAKEY"
    )
    proxy.inject(Status(503), Reset(0))
    with caplog.at_level(logging.DEBUG, "zarrfs"):  # (fsspec's own debug lines show the whole URL)
        data = read(http_fs, cat(http_fs, url, 0, 100), what=f"GET {url} bytes 0-99")
    assert data == blob[1][:100]
    assert proxy.requests[0].target.endswith("X-Amz-Signature=sig0123456789&X-Amz-Credential=AKIAKEY")
    lines = [record.getMessage() for record in caplog.records if record.name.startswith("zarrfs")]
    assert len(lines) == 2
    assert all(f"GET http://***@{host}/blob.bin?*** bytes 0-99 failed" in line for line in lines), lines
    assert "failed (HTTP 503); retry 1 in" in lines[0]
    for secret in ("hunter2secret", "sig0123456789", "AKIAKEY", "reader"):
        assert not any(secret in line for line in lines)


def test_redact() -> None:
    assert (
        redact("https://user:pw@example.org/a/b.tif?sig=x&se=y#frag") == "https://***@example.org/a/b.tif?***"
    )
    assert redact("s3://bucket/key.tif") == "s3://bucket/key.tif"
    assert redact("/local/path.tif") == "/local/path.tif"
    text = "Could not connect to 'https://u:p@h:9/x?token=abc' or s3://b/k?versionId=1."
    assert redact_text(text) == "Could not connect to 'https://***@h:9/x?***' or s3://b/k?***"


# --- s3fs against moto's S3 -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3(blob: tuple[Path, bytes]) -> Iterator[str]:
    import boto3  # with moto[server], of the test extra

    keys = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    saved = {name: os.environ.get(name) for name in keys}
    os.environ.update(keys)
    try:
        with moto_server() as endpoint:
            client = boto3.client("s3", endpoint_url=endpoint)
            client.create_bucket(Bucket="images")
            client.put_object(Bucket="images", Key="blob.bin", Body=blob[1])
            yield endpoint
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture
def s3_proxy(s3: str) -> Iterator[FaultProxy]:
    with FaultProxy(s3, timeout=20) as running:
        yield running


@pytest.fixture
def s3_fs(s3_proxy: FaultProxy) -> Any:
    import s3fs

    fs = s3fs.S3FileSystem(
        endpoint_url=s3_proxy.url, skip_instance_cache=True, config_kwargs=S3_CONFIG_WITHOUT_RETRIES
    )
    fs.retries = 1  # s3fs's own retries: none (an attribute, not an argument of S3FileSystem)
    return fs


def s3_get(fs: Any, key: str, start: int, end: int, **pins: str) -> Callable[[], Awaitable[bytes]]:
    async def get() -> bytes:
        response = await fs._call_s3(
            "get_object", Bucket="images", Key=key, Range=f"bytes={start}-{end - 1}", **pins
        )
        try:
            return bytes(await response["Body"].read())
        finally:
            response["Body"].close()

    return get


def test_s3_transient_failures_are_retried_until_success(
    s3_proxy: FaultProxy, s3_fs: Any, blob: tuple[Path, bytes]
) -> None:
    s3_proxy.inject(Status(503), Status(500), Reset(after_bytes=100_000), Drop(), Drop(), method="GET")
    data = read(s3_fs, s3_get(s3_fs, "blob.bin", 0, 1_000_000))
    assert data == blob[1][:1_000_000]
    assert s3_proxy.count("GET", "/images/blob.bin") == 6
    assert s3_proxy.pending() == 0


def test_s3_delays_past_the_deadline_end_in_a_deadline_error(s3_proxy: FaultProxy, s3_fs: Any) -> None:
    s3_proxy.inject(*[Delay(30)] * 10)
    started = time.monotonic()
    with pytest.raises(RemoteDeadline):
        read(s3_fs, s3_get(s3_fs, "blob.bin", 0, 10), timeout=1.0)
    assert time.monotonic() - started < 2.5


def test_s3_final_errors_and_a_changed_object_are_not_retried(
    s3_proxy: FaultProxy, s3_fs: Any, blob: tuple[Path, bytes]
) -> None:
    with pytest.raises(FileNotFoundError):  # moto's NoSuchKey
        read(s3_fs, s3_get(s3_fs, "missing.bin", 0, 10))
    s3_proxy.inject(Status(403))
    with pytest.raises(PermissionError):
        read(s3_fs, s3_get(s3_fs, "blob.bin", 0, 10))
    assert s3_proxy.count("GET") == 2
    etag = s3_fs.info("images/blob.bin")["ETag"]
    assert read(s3_fs, s3_get(s3_fs, "blob.bin", 0, 10, IfMatch=etag)) == blob[1][:10]
    s3_proxy.clear()
    with pytest.raises(ObjectChangedError):  # moto's own PreconditionFailed
        read(s3_fs, s3_get(s3_fs, "blob.bin", 0, 10, IfMatch='"another-etag"'))
    assert s3_proxy.count("GET") == 1


def test_http_info_failing_with_503_is_retried(proxy: FaultProxy, http_fs: Any) -> None:
    # fsspec's info turns every failure into FileNotFoundError, the response error its cause: 503 must count.
    proxy.inject(Status(503), Status(503), Status(503), Status(503))
    info = read(http_fs, lambda: http_fs._info(proxy.url + "/blob.bin"))
    assert info["size"] == SIZE
    assert [seen.method for seen in proxy.requests] == ["HEAD", "GET", "HEAD", "GET", "HEAD"]
    proxy.clear()
    proxy.inject(Status(403), Status(403), Status(403), Status(403))
    with pytest.raises(FileNotFoundError) as raised:
        read(http_fs, lambda: http_fs._info(proxy.url + "/blob.bin"))
    assert status_of(raised.value) == 403
    assert proxy.count() == 2  # fsspec's HEAD and GET of one attempt: no retry
