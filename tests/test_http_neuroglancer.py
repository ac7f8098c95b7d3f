"""A real browser: headless Chromium opens Neuroglancer (the viewer bundle of the ``neuroglancer`` PyPI
package, served locally: no internet) on ``zarrfs serve``, as ``zarr://`` and as ``precomputed://``, and the
rendered canvas shows the image: not uniform, and correlated with the source pixels. The screenshots are kept
under the test's output directory."""

from __future__ import annotations

import http.server
import json
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
import tifffile
from devtools import chromium
from http_serving import serving

WIDTH, HEIGHT = 800, 600
PIXEL_UM = 0.5
# The viewer's chrome (top bar) is left out: the comparison uses the middle of the data panel.
WINDOW = 160
SEARCH = 48  # pixels of misplacement tolerated either way when aligning the render with the image


def _viewer_files() -> Path:
    import neuroglancer

    return Path(neuroglancer.__file__).parent / "static" / "client"


@pytest.fixture(scope="module")
def viewer() -> Iterator[str]:
    """Neuroglancer's static client under /v/zarrfs/ (the URL shape that bundle expects)."""
    root = _viewer_files()

    class Files(http.server.SimpleHTTPRequestHandler):
        def translate_path(self, path: str) -> str:
            relative = urllib.parse.urlsplit(path).path.removeprefix("/v/zarrfs/") or "index.html"
            return str(root / relative)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Files)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v/zarrfs/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """Large smooth features (a correlation over a misplaced window stays meaningful) and a bright disc."""
    y, x = np.mgrid[0:384, 0:512]
    pixels = 110 + 90 * np.sin(x / 37.0) * np.cos(y / 53.0)
    pixels[(x - 300) ** 2 + (y - 170) ** 2 < 45**2] = 250
    pixels = pixels.astype(np.uint8)
    path = tmp_path_factory.mktemp("browser") / "smooth.ome.tif"
    tifffile.imwrite(
        path,
        pixels,
        tile=(128, 128),
        ome=True,
        metadata={"axes": "YX", "PhysicalSizeX": PIXEL_UM, "PhysicalSizeY": PIXEL_UM},
    )
    return path, pixels


def _state(source: str) -> dict:
    metres = PIXEL_UM * 1e-6
    return {
        "dimensions": {"x": [metres, "m"], "y": [metres, "m"]},
        "crossSectionScale": 1,
        "layers": [{"type": "image", "source": source, "name": "zarrfs"}],
        "layout": "xy",
        "showAxisLines": False,
        "showScaleBar": False,
        "showDefaultAnnotations": False,
        "selectedLayer": {"visible": False},
    }


def _best_correlation(rendered: np.ndarray, expected: np.ndarray) -> float:
    """The highest correlation of the render's central window with an equal window of the image, over
    placements within SEARCH pixels of the centre (the render's centre shows the image's centre)."""
    cy, cx = rendered.shape[0] // 2, rendered.shape[1] // 2
    window = rendered[cy - WINDOW // 2 : cy + WINDOW // 2, cx - WINDOW // 2 : cx + WINDOW // 2].ravel()
    ey, ex = expected.shape[0] // 2, expected.shape[1] // 2
    best = -1.0
    for dy in range(-SEARCH, SEARCH + 1, 2):
        for dx in range(-SEARCH, SEARCH + 1, 2):
            top, left = ey + dy - WINDOW // 2, ex + dx - WINDOW // 2
            piece = expected[top : top + WINDOW, left : left + WINDOW].ravel()
            best = max(best, float(np.corrcoef(window, piece)[0, 1]))
    return best


# Neuroglancer's zarr:// refuses a directory with both Zarr v2 and v3 metadata ("Both zarr v2 and v3 metadata
# found"): with one layout served (the default) it reads that one; with both, zarr2:// or zarr3:// picks one.
@pytest.mark.parametrize(
    ("kind", "source", "options"),
    [
        ("zarr-v2", "zarr://{base}", ()),
        ("zarr-v3", "zarr://{base}", ("--ngff", "0.5")),
        ("zarr2", "zarr2://{base}", ("--ngff", "all")),
        ("precomputed", "precomputed://{base}precomputed", ()),
        ("precomputed-jpeg", "precomputed://{base}precomputed/jpeg", ()),
    ],
)
def test_neuroglancer_in_chromium_renders_the_served_image(
    kind: str,
    source: str,
    options: tuple[str, ...],
    viewer: str,
    image: tuple[Path, np.ndarray],
    tmp_path: Path,
) -> None:
    path, pixels = image
    with serving(path, *options) as server, chromium(WIDTH, HEIGHT) as open_page:
        base = f"http://{server.host}:{server.port}/"
        source = source.format(base=base)
        fragment = urllib.parse.quote(json.dumps(_state(source)), safe="")
        page = open_page(f"{viewer}#!{fragment}")
        page.wait_until("!!(window.viewer && window.viewer.isReady())", timeout=40)
        png = page.screenshot_png()
    (tmp_path / f"neuroglancer-{kind}.png").write_bytes(png)
    shot = imagecodecs.png_decode(png)[..., :3].astype(np.float64).mean(axis=2)
    assert shot.shape == (HEIGHT, WIDTH)
    middle = shot[
        HEIGHT // 2 - WINDOW // 2 : HEIGHT // 2 + WINDOW // 2,
        WIDTH // 2 - WINDOW // 2 : WIDTH // 2 + WINDOW // 2,
    ]
    assert middle.std() > 20, f"the render is uniform (std {middle.std():.1f}); see {tmp_path}"
    correlation = _best_correlation(shot, pixels.astype(np.float64))
    assert correlation > 0.9, (
        f"the render does not show the image (correlation {correlation:.2f}); see {tmp_path}"
    )


def test_precomputed_jpeg_chunks_decode_close_to_the_source(image: tuple[Path, np.ndarray]) -> None:
    path, pixels = image
    with serving(path, "--chunks", "128,128") as server:
        base = f"http://{server.host}:{server.port}/precomputed/jpeg/"
        with urllib.request.urlopen(base + "info", timeout=30) as response:
            info = json.load(response)
        assert info["scales"][0]["encoding"] == "jpeg" and info["data_type"] == "uint8"
        with urllib.request.urlopen(base + "0/384-512_256-384_0-1", timeout=30) as response:
            decoded = imagecodecs.jpeg8_decode(response.read())
    expected = pixels[256:384, 384:512]
    assert decoded.shape == expected.shape
    assert np.abs(decoded.astype(int) - expected).mean() < 2  # lossy, but close
