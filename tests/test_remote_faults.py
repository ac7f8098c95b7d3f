"""Faults of remote sources end to end: a COG at an http:// URL (nginx) or in S3 (moto) behind the
fault-injecting proxy (tests/proxies.py), read through a real FUSE mount and over ``zarrfs serve``.
Transient faults are retried and the values stay tifffile's; a fault that persists past ``--timeout`` is EIO
(HTTP 502, or 504 for no answer) for that chunk only, in bounded time, while the daemon goes on serving; no
credential appears in any output. The oracle is tifffile reading the served file locally."""

from __future__ import annotations

import errno
import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import zarr
from http_serving import serving
from mounting import mounted, zarrfs
from proxies import Delay, Drop, FaultProxy, Reset, Status
from remote_cases import oracle
from remote_servers import BUCKET, KEY_ID, SECRET, MotoS3, Nginx

pytest_plugins = ["remote_fixtures"]  # the servers and the cases they serve

IMAGE = "cog.tif"
TIMEOUT_S = 4  # --timeout of the mounts that meet persisting faults
# What a chunk that meets a persisting fault may take: the time limit, and slack for a busy machine.
BOUND_S = TIMEOUT_S + 6
# Credentials that must never be shown: a URL's user info and the query of a pre-signed URL.
PASSWORD = "pa55-word-hidden"
SIGNATURE = "sig0hidden0123456789"
CREDENTIAL = "AKIAHIDDENCREDENTIAL"


@pytest.fixture
def proxy(http: Nginx) -> Iterator[FaultProxy]:
    with FaultProxy(http.url, timeout=30) as running:
        yield running


@pytest.fixture
def expected(cases: dict[str, Path]) -> np.ndarray:
    return oracle(cases[IMAGE])


def level0(mountpoint: Path) -> np.ndarray:
    return np.asarray(zarr.open_group(str(mountpoint), mode="r")["0"][...])


def chunk_files(mountpoint: Path) -> list[Path]:
    """Level 0's chunk files, in key order (the last ones hold the end of the level's tiles)."""
    return sorted(
        path
        for path in (mountpoint / "0").rglob("*")
        if path.is_file() and not path.name.startswith(".") and path.name != "zarr.json"
    )


def assert_values(mountpoint: Path, expected: np.ndarray) -> None:
    np.testing.assert_array_equal(level0(mountpoint).reshape(expected.shape), expected)


def test_transient_faults_are_retried_and_values_stay_equal(
    proxy: FaultProxy, expected: np.ndarray, tmp_path: Path
) -> None:
    with mounted(f"{proxy.url}/{IMAGE}", tmp_path / "mnt") as live:  # type: ignore[arg-type]
        faults = (Status(503), Status(503), Reset(after_bytes=100_000), Drop(), Status(429))
        proxy.inject(*faults, method="GET", path=f"/{IMAGE}")
        started = time.monotonic()
        assert_values(live, expected)
        elapsed = time.monotonic() - started
        assert proxy.pending() == 0  # every fault was met by a read, and retried
    log = (tmp_path / "zarrfs.log").read_text()
    assert "failed (HTTP 503); retry 1 in" in log
    print(f"full read with {len(faults)} faults retried: {elapsed:.2f} s, {proxy.count('GET')} GETs")


@pytest.mark.parametrize("fault", [Status(503), Delay(30)], ids=["503", "delay"])
def test_a_persisting_fault_is_eio_for_that_chunk_only_in_bounded_time(
    fault: Status | Delay, proxy: FaultProxy, expected: np.ndarray, tmp_path: Path
) -> None:
    mountpoint = tmp_path / "mnt"
    with mounted(f"{proxy.url}/{IMAGE}", mountpoint, "--timeout", str(TIMEOUT_S)) as live:  # type: ignore[arg-type]
        last = chunk_files(live)[-1]  # its tiles lie beyond what opening the file read
        proxy.inject(*[fault] * 1000, method="GET", path=f"/{IMAGE}")
        started = time.monotonic()
        with pytest.raises(OSError) as raised:
            last.read_bytes()
        elapsed = time.monotonic() - started
        assert raised.value.errno == errno.EIO
        assert elapsed < BOUND_S
        failed_requests = proxy.count("GET")
        proxy.clear()  # the fault ends: every chunk reads, the failed one too (a failure is not kept)
        assert_values(live, expected)
    assert failed_requests >= 1
    log = (tmp_path / "zarrfs.log").read_text()
    if isinstance(fault, Status):
        assert "times within the time limit (last: HTTP 503)" in log
    print(f"{type(fault).__name__} persisting: EIO after {elapsed:.2f} s and {failed_requests} GETs")


def test_s3_faults_are_retried_without_showing_credentials(
    s3: MotoS3, cases: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = oracle(cases[IMAGE])
    key = f"/{BUCKET}/{IMAGE}"
    with FaultProxy(s3.endpoint, timeout=30) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        options = ("--storage-option", f"key={KEY_ID}", "--storage-option", f"secret={SECRET}")
        mountpoint = tmp_path / "mnt"
        with mounted(f"s3://{BUCKET}/{IMAGE}", mountpoint, "--timeout", str(TIMEOUT_S), *options) as live:  # type: ignore[arg-type]
            proxy.inject(Status(503), Reset(after_bytes=100_000), Status(500), method="GET", path=key)
            assert_values(live, expected)
            assert proxy.pending() == 0
            with open("/proc/self/mountinfo") as mounts:
                entry = next(line for line in mounts if f" {live} " in line)
    log = (tmp_path / "zarrfs.log").read_text()
    assert "failed (HTTP 503); retry 1 in" in log
    for secret in (KEY_ID, SECRET):
        assert secret not in log and secret not in entry


def test_over_http_a_persisting_fault_is_502_and_no_answer_504(
    proxy: FaultProxy, expected: np.ndarray, tmp_path: Path
) -> None:
    log = tmp_path / "serve.log"
    with serving(f"{proxy.url}/{IMAGE}", "--timeout", str(TIMEOUT_S), log=log) as served:
        status, _, body = served.request("GET", "/0/.zarray")
        assert status == 200
        array = json.loads(body)
        grid = [-(-size // chunk) for size, chunk in zip(array["shape"], array["chunks"], strict=True)]
        separator = array.get("dimension_separator", ".")

        def chunk(*from_end: int) -> str:
            index = [n - 1 - back for n, back in zip(grid, (0,) * (len(grid) - 2) + from_end, strict=True)]
            return "/0/" + separator.join(map(str, index))

        proxy.inject(*[Status(503)] * 1000, method="GET", path=f"/{IMAGE}")
        started = time.monotonic()
        status, _, body = served.request("GET", chunk(0, 0))
        assert status == 502, body
        assert time.monotonic() - started < BOUND_S
        assert "HTTP 503" in body.decode()
        assert proxy.count("GET") >= 3  # retried first, within the time limit
        proxy.clear()
        proxy.inject(*[Delay(30)] * 1000, method="GET", path=f"/{IMAGE}")
        started = time.monotonic()
        status, _, body = served.request("GET", chunk(0, 1))
        assert status == 504, body
        assert time.monotonic() - started < BOUND_S
        proxy.clear()
        status, _, body = served.request("GET", chunk(0, 0))  # the server goes on serving
        assert status == 200
        rows, columns = array["chunks"][-2:]
        height, width = array["shape"][-2:]
        last = np.frombuffer(body, dtype=array["dtype"]).reshape(rows, columns)
        top, left = (grid[-2] - 1) * rows, (grid[-1] - 1) * columns
        plane = expected.reshape(height, width)
        np.testing.assert_array_equal(last[: height - top, : width - left], plane[top:, left:])


def test_credentials_of_a_url_never_appear_in_any_output(
    proxy: FaultProxy, expected: np.ndarray, tmp_path: Path
) -> None:
    host = proxy.url.removeprefix("http://")
    url = f"http://reader:{PASSWORD}@{host}/{IMAGE}?X-Amz-Signature={SIGNATURE}&X-Amz-Credential={CREDENTIAL}"
    outputs: list[str] = []
    proxy.inject(Status(503), method="HEAD")  # the open's request retried: its log line names the URL
    info = zarrfs("info", url)
    assert info.returncode == 0, info.stderr
    outputs += [info.stdout, info.stderr]
    mountpoint = tmp_path / "mnt"
    with mounted(url, mountpoint, "--timeout", str(TIMEOUT_S), "--debug") as live:  # type: ignore[arg-type]
        with open("/proc/self/mountinfo") as mounts:
            outputs.append(next(line for line in mounts if f" {live} " in line))
        proxy.inject(*[Status(503)] * 1000, method="GET")  # an EIO, and its log lines
        with pytest.raises(OSError) as raised:
            chunk_files(live)[-1].read_bytes()
        assert raised.value.errno == errno.EIO
        proxy.clear()
        proxy.inject(Status(503), Reset(after_bytes=1000), method="GET")
        assert_values(live, expected)
    outputs.append((tmp_path / "zarrfs.log").read_text())
    assert proxy.requests and all(SIGNATURE in seen.target for seen in proxy.requests)  # sent, never shown
    missing = zarrfs("info", url.replace(IMAGE, "missing.tif"))
    assert missing.returncode == 1 and "not found" in missing.stderr
    outputs += [missing.stdout, missing.stderr]
    text = "\n".join(outputs)
    assert "failed (HTTP 503); retry 1 in" in text
    for secret in (PASSWORD, SIGNATURE, CREDENTIAL, "reader"):
        assert secret not in text


def test_a_persisting_fault_at_open_is_one_line_in_bounded_time(proxy: FaultProxy) -> None:
    proxy.inject(*[Status(503)] * 1000, method="HEAD")
    started = time.monotonic()
    result = zarrfs("info", f"{proxy.url}/{IMAGE}")
    elapsed = time.monotonic() - started
    assert result.returncode == 1
    error = result.stderr.splitlines()[-1]
    assert error.startswith(
        f"zarrfs: error: cannot open {proxy.url}/{IMAGE}: HEAD {proxy.url}/{IMAGE}: failed "
    )
    assert error.endswith(" times within the time limit (last: HTTP 503)")
    assert proxy.count("HEAD") >= 5
    assert elapsed < 40  # the open's 20 s, and starting Python on a busy machine
    print(f"open under a persisting 503: {error!r} after {elapsed:.1f} s")


def test_a_failing_identity_check_does_not_fail_reads(
    proxy: FaultProxy, expected: np.ndarray, tmp_path: Path
) -> None:
    with mounted(f"{proxy.url}/{IMAGE}", tmp_path / "mnt", "--timeout", str(TIMEOUT_S)) as live:  # type: ignore[arg-type]
        proxy.inject(*[Status(503)] * 1000, method="HEAD")  # the periodic check of the object's identity
        time.sleep(6)  # the check is due (every 5 s)
        started = time.monotonic()
        assert_values(live, expected)
        elapsed = time.monotonic() - started
        assert proxy.count("HEAD") >= 2  # the check ran, and was retried within its own, shorter limit
    # Each check gives up after 2 s: the reads never wait out their time limit for it.
    assert elapsed < 3 * TIMEOUT_S, elapsed
    print(f"full read while every identity check fails: {elapsed:.1f} s")
    log = (tmp_path / "zarrfs.log").read_text()
    assert "cannot check" in log
