"""``zarrfs serve``: HTTP semantics checked with raw requests against a real server (oracle: tifffile)."""

from __future__ import annotations

import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
from http_serving import Served, serving

CHUNK = 256


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    path = tmp_path_factory.mktemp("http") / "image.tif"
    pixels = np.random.default_rng(3).integers(0, 60000, (600, 700), dtype=np.uint16)
    tifffile.imwrite(path, pixels, tile=(128, 128))
    return path, pixels


@pytest.fixture(scope="module")
def served(image: tuple[Path, np.ndarray]) -> Served:
    """The default layout: NGFF 0.4 on Zarr v2 alone."""
    with serving(image[0], "--chunks", f"{CHUNK},{CHUNK}", "--levels", "2") as server:
        yield server


@pytest.fixture(scope="module")
def served_both(image: tuple[Path, np.ndarray]) -> Served:
    """Both layouts side by side: NGFF 0.4 on Zarr v2 and NGFF 0.5 on Zarr v3."""
    with serving(image[0], "--chunks", f"{CHUNK},{CHUNK}", "--levels", "2", "--ngff", "all") as server:
        yield server


def _chunk(pixels: np.ndarray, i: int, j: int) -> bytes:
    return pixels[i * CHUNK : (i + 1) * CHUNK, j * CHUNK : (j + 1) * CHUNK].astype("<u2").tobytes()


def test_chunks_documents_and_head_have_exact_lengths(
    served: Served, served_both: Served, image: tuple[Path, np.ndarray]
) -> None:
    status, headers, body = served.request("GET", "/0/1/1")
    assert status == 200 and body == _chunk(image[1], 1, 1)
    assert headers["content-length"] == str(len(body))
    assert headers["cache-control"] == "max-age=86400"
    assert headers["access-control-allow-origin"] == "*"
    head_status, head_headers, head_body = served.request("HEAD", "/0/1/1")
    assert (head_status, head_body) == (200, b"")
    assert head_headers["content-length"] == str(len(body)) and head_headers["etag"] == headers["etag"]
    status, headers, body = served.request("GET", "/0/.zarray")
    assert status == 200 and json.loads(body)["chunks"] == [CHUNK, CHUNK]
    assert headers["content-type"] == "application/json" and headers["cache-control"] == "max-age=60"
    for path in ("/zarr.json", "/0/zarr.json", "/0/c/0/1"):  # the default serves no Zarr v3 keys
        assert served.request("GET", path)[0] == 404, path
    status, _, body = served_both.request("GET", "/0/c/0/1")  # the v3 key of the same pixels
    assert status == 200 and body == _chunk(image[1], 0, 1)
    assert served_both.request("GET", "/0/0/1")[2] == body


@pytest.mark.parametrize(
    ("header", "start", "stop"),
    [("bytes=10-19", 10, 20), ("bytes=131000-", 131000, 131072), ("bytes=-100", 131072 - 100, 131072),
     ("bytes=0-999999", 0, 131072), ("bytes=-999999", 0, 131072)],
)  # fmt: skip
def test_single_ranges_get_206_with_content_range(
    served: Served, image: tuple[Path, np.ndarray], header: str, start: int, stop: int
) -> None:
    status, headers, body = served.request("GET", "/0/0/0", {"Range": header})
    assert status == 206
    assert body == _chunk(image[1], 0, 0)[start:stop]
    assert headers["content-range"] == f"bytes {start}-{stop - 1}/131072"
    assert headers["content-length"] == str(stop - start)
    head_status, head_headers, _ = served.request("HEAD", "/0/0/0", {"Range": header})
    assert head_status == 206 and head_headers["content-range"] == headers["content-range"]


@pytest.mark.parametrize("header", ["bytes=131072-", "bytes=200000-200010", "bytes=-0"])
def test_unsatisfiable_ranges_get_416(served: Served, header: str) -> None:
    status, headers, body = served.request("GET", "/0/0/0", {"Range": header})
    assert status == 416 and headers["content-range"] == "bytes */131072"
    assert body.count(b"\n") == 1


def test_ranges_it_does_not_answer_in_part_get_the_whole_file(served: Served) -> None:
    for header in ("bytes=0-1,5-9", "items=0-5", "bytes=9-2"):
        status, _, body = served.request("GET", "/0/0/0", {"Range": header})
        assert status == 200 and len(body) == 131072


def test_cors_preflight_allows_range_and_every_response_exposes_headers(served: Served) -> None:
    status, headers, _ = served.request(
        "OPTIONS",
        "/0/0/0",
        {"Origin": "http://viewer.example", "Access-Control-Request-Method": "GET",
         "Access-Control-Request-Headers": "range"},
    )  # fmt: skip
    assert status == 204
    assert headers["access-control-allow-origin"] == "*"
    assert "range" in headers["access-control-allow-headers"].lower()
    assert "GET" in headers["access-control-allow-methods"]
    for path in ("/0/0/0", "/no/such/key", "/"):
        exposed = served.request("GET", path)[1]["access-control-expose-headers"]
        assert {"Content-Range", "Content-Length", "ETag"} <= {name.strip() for name in exposed.split(",")}


def test_etag_and_if_none_match_give_304(served: Served) -> None:
    _, headers, _ = served.request("GET", "/0/1/2")
    tag = headers["etag"]
    assert headers["last-modified"].endswith("GMT")
    status, again, body = served.request("GET", "/0/1/2", {"If-None-Match": tag})
    assert (status, body) == (304, b"") and again["etag"] == tag
    assert served.request("GET", "/0/1/2", {"If-None-Match": '"other"'})[0] == 200
    assert served.request("GET", "/0/1/1")[1]["etag"] != tag  # by path


def test_keys_outside_the_tree_or_grid_get_404(served: Served) -> None:
    for path in ("/0/3/0", "/0/0/3", "/0/0/0/0", "/5/.zarray", "/nothing", "/0/01/0", "/0", "/0/c"):
        status, headers, body = served.request("GET", path)
        assert status == 404, path
        assert body.count(b"\n") == 1 and headers["cache-control"] == "no-store"


def test_other_methods_get_405(served: Served) -> None:
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        status, headers, _ = served.request(method, "/0/.zarray")
        assert status == 405 and headers["allow"] == "GET, HEAD, OPTIONS"


@pytest.mark.parametrize(
    "path",
    ["/../../etc/passwd", "/0/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/0/%2E%2E/%2e%2e/etc/passwd",
     "//etc/passwd", "/0//0/0", "/0/0%00/0", "/%2fetc%2fpasswd/x/..", "/0/.%2e/.zattrs", "/..%5c..%5cetc",
     "http://127.0.0.1/etc/passwd", "/%ff%fe"],
)  # fmt: skip
def test_path_escapes_never_leave_the_tree(served: Served, path: str) -> None:
    status, _, body = served.request("GET", path)
    assert status in (400, 404), (path, status)
    assert b"root:" not in body


def test_json_is_gzipped_when_accepted(served: Served) -> None:
    plain = served.request("GET", "/.zmetadata")[2]
    status, headers, body = served.request("GET", "/.zmetadata", {"Accept-Encoding": "gzip, deflate"})
    assert status == 200 and headers["content-encoding"] == "gzip"
    assert gzip.decompress(body) == plain and headers["content-length"] == str(len(body))
    assert "zarr_consolidated_format" in json.loads(plain)
    assert "content-encoding" not in served.request("GET", "/0/0/0", {"Accept-Encoding": "gzip"})[1]


def test_index_is_html_for_browsers_and_json_otherwise(served: Served) -> None:
    status, headers, body = served.request("GET", "/", {"Accept": "text/html,*/*;q=0.8"})
    assert status == 200 and headers["content-type"].startswith("text/html")
    base = f"http://{served.host}:{served.port}/"
    assert f"zarr://{base}".encode() in body and b"zarr2://" not in body and b"zarr3://" not in body
    assert f"precomputed://{base}precomputed".encode() in body and b"vizarr" in body
    status, headers, body = served.request("GET", "/")
    index = json.loads(body)
    assert index["source"] == "image.tif"
    assert [(layout["ngff"], layout["zarr_format"]) for layout in index["layouts"]] == [("0.4", 2)]
    assert [array["shape"] for array in index["layouts"][0]["arrays"]] == [[600, 700], [300, 350]]


def test_the_index_names_each_zarr_format_when_both_layouts_are_served(served_both: Served) -> None:
    # Neuroglancer's plain zarr:// refuses a directory holding both Zarr v2 and v3 metadata.
    base = f"http://{served_both.host}:{served_both.port}/"
    viewers = json.loads(served_both.request("GET", "/")[2])["viewers"]
    zarr_sources = {source for source in viewers.values() if source.startswith("zarr")}
    assert zarr_sources == {f"zarr2://{base}", f"zarr3://{base}"}


def test_oversized_request_lines_and_headers_are_refused(served: Served) -> None:
    assert served.request("GET", "/" + "a" * 20000)[0] in (400, 414)
    assert served.request("GET", "/.zgroup", {"X-Big": "b" * 20000})[0] in (400, 431)
    assert served.request("GET", "/.zgroup")[0] == 200  # and it keeps serving


def test_precomputed_info_and_chunks_hold_the_source_pixels(
    served: Served, image: tuple[Path, np.ndarray]
) -> None:
    info = json.loads(served.request("GET", "/precomputed/info")[2])
    assert info["data_type"] == "uint16" and info["num_channels"] == 1
    assert [scale["size"] for scale in info["scales"]] == [[700, 600, 1], [350, 300, 1]]
    assert info["scales"][0]["chunk_sizes"] == [[CHUNK, CHUNK, 1]]
    status, _, body = served.request("GET", "/precomputed/0/512-700_256-512_0-1")  # an edge chunk
    assert status == 200
    np.testing.assert_array_equal(np.frombuffer(body, "<u2").reshape(256, 188), image[1][256:512, 512:700])
    for path in (
        "/precomputed/0/512-768_256-512_0-1",
        "/precomputed/0/1-257_0-256_0-1",
        "/precomputed/9/info",
        "/precomputed/jpeg/info",  # JPEG holds uint8 only
    ):
        assert served.request("GET", path)[0] == 404, path


def test_token_is_required_and_never_logged(image: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    token = "s3cret-t0ken-value"
    log = tmp_path / "serve.log"
    with serving(image[0], "--token", token, log=log) as server:
        assert server.url.endswith(f"?token={token}")
        assert server.request("GET", "/.zgroup")[0] == 401
        assert server.request("GET", "/.zgroup?token=wrong")[0] == 401
        assert server.request("GET", f"/.zgroup?token={token}")[0] == 200
        assert server.request("GET", "/.zgroup", {"Authorization": f"token {token}"})[0] == 200
        assert server.request("OPTIONS", "/.zgroup")[0] == 204  # preflights carry no credentials
        _, headers, _ = server.request("GET", f"/?token={token}")
        cookie = headers["set-cookie"].split(";")[0]
        assert server.request("GET", "/0/0/0", {"Cookie": cookie})[0] == 200
        assert server.request("GET", f"/missing?token={token}")[0] == 404
    assert token not in log.read_text()


def test_a_changed_source_gets_500_with_one_line_and_the_server_keeps_serving(tmp_path: Path) -> None:
    source = tmp_path / "changing.tif"
    tifffile.imwrite(source, np.zeros((300, 300), np.uint8))
    with serving(source, "--chunks", "128,128") as server:
        os.utime(source, ns=(0, 0))
        status, headers, body = server.request("GET", "/0/0/0")
        assert status == 500 and body.count(b"\n") == 1 and b"Traceback" not in body
        assert "was modified" in body.decode() and headers["cache-control"] == "no-store"
        assert server.request("GET", "/.zgroup")[0] == 200


def test_a_request_over_the_time_limit_gets_504_and_the_server_keeps_serving(tmp_path: Path) -> None:
    # One huge LZW strip: producing any chunk means decoding all of it (~0.4 s here), far longer than 50 ms.
    source = tmp_path / "one_strip.tif"
    pixels = np.random.default_rng(0).integers(0, 4000, (6000, 6000), dtype=np.uint16)
    tifffile.imwrite(source, pixels, compression="lzw", rowsperstrip=6000)
    with serving(source, "--timeout", "0.05", "--levels", "1", "--ngff", "0.4") as server:
        status, _, body = server.request("GET", "/0/0/0")
        assert status == 504 and "took longer than 0.05 s" in body.decode()
        assert server.request("GET", "/.zgroup")[0] == 200
        deadline = time.monotonic() + 30
        while (status := server.request("GET", "/0/0/0")[0]) != 200:
            assert status == 504 and time.monotonic() < deadline
            time.sleep(0.2)


def test_idle_and_half_sent_connections_are_closed(served: Served) -> None:
    from zarrfs.frontends.http.server import IDLE_TIMEOUT_S

    idle = socket.create_connection((served.host, served.port))
    slow = socket.create_connection((served.host, served.port))  # a request whose headers never end
    slow.sendall(b"GET /.zgroup HTTP/1.1\r\nHost: x\r\n")
    try:
        for connection in (idle, slow):
            connection.settimeout(IDLE_TIMEOUT_S + 30)
            assert connection.recv(1) == b""  # closed by the server
    finally:
        idle.close()
        slow.close()
    assert served.request("GET", "/.zgroup")[0] == 200


def _serve_command(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zarrfs", "serve", *arguments], capture_output=True, text=True, timeout=60
    )


def test_a_taken_port_or_bad_host_is_one_line_and_non_zero(
    served: Served, image: tuple[Path, np.ndarray]
) -> None:
    taken = _serve_command(str(image[0]), "--port", str(served.port))
    assert taken.returncode == 1
    assert (
        taken.stderr == f"zarrfs: error: cannot listen on 127.0.0.1:{served.port}: Address already in use\n"
        and taken.stderr.count("\n") == 1
    )
    bad = _serve_command(str(image[0]), "--host", "no-such-host.invalid")
    assert bad.returncode == 1 and bad.stderr.startswith("zarrfs: error: cannot listen on no-such-host")
    assert bad.stderr.count("\n") == 1
    foreign = _serve_command(str(image[0]), "--host", "192.0.2.1")  # an address of no interface here
    assert foreign.returncode == 1
    assert (
        foreign.stderr == "zarrfs: error: cannot listen on 192.0.2.1:8000: Cannot assign requested address\n"
    )


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_it_stops_cleanly_on_a_signal(image: tuple[Path, np.ndarray], signum: int) -> None:
    with serving(image[0]) as server:
        assert server.request("GET", "/.zgroup")[0] == 200
        server.process.send_signal(signum)
        assert server.process.wait(timeout=15) == 0
        assert server.process.stdout is not None and server.process.stdout.read() == ""


def test_the_same_source_can_be_mounted_and_served_at_once(
    image: tuple[Path, np.ndarray], served: Served, tmp_path: Path
) -> None:
    from mounting import mounted

    with mounted(image[0], tmp_path / "mnt", "--chunks", f"{CHUNK},{CHUNK}", "--levels", "2") as mnt:
        assert not (mnt / "zarr.json").exists()  # the same default layout as the server's
        assert (mnt / "0" / "1" / "0").read_bytes() == _chunk(image[1], 1, 0)
        assert served.request("GET", "/0/1/0")[2] == _chunk(image[1], 1, 0)
        assert (mnt / ".zattrs").read_bytes() == served.request("GET", "/.zattrs")[2]


def test_a_cors_origin_is_sent_and_varied_on(image: tuple[Path, np.ndarray]) -> None:
    with serving(image[0], "--cors-origin", "https://viewer.example") as server:
        _, headers, _ = server.request("GET", "/.zattrs")
        assert headers["access-control-allow-origin"] == "https://viewer.example"
        assert headers["vary"] == "Accept-Encoding, Origin"
        assert (
            server.request("OPTIONS", "/0/0/0")[1]["access-control-allow-origin"] == "https://viewer.example"
        )


def test_token_auto_makes_a_random_token_that_the_printed_url_carries(image: tuple[Path, np.ndarray]) -> None:
    with serving(image[0], "--token", "auto") as first, serving(image[0], "--token", "auto") as second:
        tokens = [server.url.partition("?token=")[2] for server in (first, second)]
        assert len(tokens[0]) >= 24 and tokens[0] != tokens[1]
        assert first.request("GET", "/.zgroup")[0] == 401
        assert first.request("GET", f"/.zgroup?token={tokens[0]}")[0] == 200
