"""zarrita (npm), the JavaScript Zarr client of web viewers, reads ``zarrfs serve`` in node: Zarr v2, v3 and
sharded v3 arrays equal to tifffile's pixels."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from http_serving import serving
from node_clients import node_modules
from tiff_cases import CASES


@pytest.fixture(scope="module")
def scripts() -> Path:
    return node_modules()


@pytest.mark.parametrize(
    "name", ["ome_5d_xyczt", "uint16_tiled_zlib", "int16_strips_lzw", "float32_tiled_float_predictor"]
)
@pytest.mark.parametrize(
    ("zarr_format", "options"),
    [("2", ()), ("3", ("--ngff", "0.5")), ("3", ("--ngff", "0.5", "--shards", "2"))],
)
def test_zarrita_reads_equal_over_http(
    name: str, zarr_format: str, options: tuple[str, ...], scripts: Path, tmp_path: Path
) -> None:
    case = CASES[name](tmp_path)
    with serving(
        case.path, "--chunks", "1,1,1,32,32" if case.expected.ndim == 5 else "32,32", *options
    ) as server:
        result = subprocess.run(
            [
                "node",
                str(scripts / "read_zarrita.mjs"),
                f"http://{server.host}:{server.port}/",
                "0",
                zarr_format,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    read = json.loads(result.stdout)
    assert read["shape"] == list(case.expected.shape)
    pixels = np.frombuffer(base64.b64decode(read["data"]), dtype=case.expected.dtype.newbyteorder("<"))
    np.testing.assert_array_equal(pixels.reshape(case.expected.shape), case.expected)
