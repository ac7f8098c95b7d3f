"""Clients reading ``zarrfs serve`` over HTTP: zarr-python (fsspec), tensorstore's http kvstore (zarr, zarr3,
sharded zarr3), ome-zarr-py's Reader and ome-zarr-models. test_front_ends.py reads every TIFF case's default
layout (Zarr v2) through the HTTP server; here the Zarr v3 layouts (tensorstore reads shards in ranges)."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import tensorstore
import zarr
from http_serving import serving
from tiff_cases import CASES


@pytest.fixture(scope="module")
def case_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cases")


def _tensorstore(driver: str, url: str) -> np.ndarray:
    spec = {"driver": driver, "kvstore": {"driver": "http", "base_url": url}}
    return tensorstore.open(spec, read=True).result().read().result()


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_case_reads_equal_as_sharded_zarr_v3_over_http(name: str, case_dir: Path) -> None:
    case = CASES[name](case_dir)
    with serving(case.path, "--series", str(case.series), "--ngff", "0.5", "--shards", "2") as server:
        base = f"http://{server.host}:{server.port}"
        group = zarr.open_group(base, mode="r", zarr_format=3)
        axes = group.attrs["ome"]["multiscales"][0]["axes"]
        assert "".join(axis["name"] for axis in axes) == case.axes
        served = group["0"][...]
        assert served.shape == case.expected.shape
        np.testing.assert_array_equal(served, case.expected)
        np.testing.assert_array_equal(_tensorstore("zarr3", f"{base}/0/"), case.expected)  # sharded


@pytest.mark.parametrize("name", ["ome_5d_xyczt", "uint16_tiled_zlib", "rgb_interleaved"])
def test_unsharded_v3_and_compressed_chunks_read_equal_over_http(name: str, case_dir: Path) -> None:
    case = CASES[name](case_dir)
    with serving(case.path, "--series", str(case.series), "--compressor", "zstd", "--ngff", "all") as server:
        base = f"http://{server.host}:{server.port}"
        np.testing.assert_array_equal(_tensorstore("zarr3", f"{base}/0/"), case.expected)
        np.testing.assert_array_equal(_tensorstore("zarr", f"{base}/0/"), case.expected)
        group = zarr.open_group(base, mode="r", zarr_format=3)
        np.testing.assert_array_equal(group["0"][...], case.expected)


def _fetch_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


def test_ome_zarr_reader_opens_the_url_and_the_documents_validate(case_dir: Path) -> None:
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader
    from ome_zarr_models.v04.image import ImageAttrs as ImageAttrsV04
    from ome_zarr_models.v05.image import ImageAttrs as ImageAttrsV05

    case = CASES["ome_5d_xyczt"](case_dir)
    with serving(case.path, "--ngff", "0.4") as server:
        base = f"http://{server.host}:{server.port}/"
        location = parse_url(base)
        assert location is not None
        image = next(iter(Reader(location)()))
        assert [axis["name"] for axis in image.metadata["axes"]] == list(case.axes)
        np.testing.assert_array_equal(np.asarray(image.data[0]), case.expected)
        ImageAttrsV04.model_validate(_fetch_json(base + ".zattrs"))
    with serving(case.path, "--ngff", "0.5") as server:
        base = f"http://{server.host}:{server.port}/"
        ImageAttrsV05.model_validate(_fetch_json(base + "zarr.json")["attributes"]["ome"])


def test_precomputed_chunks_of_a_5d_image_assemble_to_its_first_time_point(case_dir: Path) -> None:
    """Neuroglancer's raw chunks hold x fastest, then y, z and the channel; a time series shows t = 0."""
    case = CASES["ome_5d_xyczt"](case_dir)
    _, c, z, y, x = case.expected.shape
    with serving(case.path, "--chunks", "1,1,2,16,16") as server:
        base = f"http://{server.host}:{server.port}/precomputed/"
        info = _fetch_json(base + "info")
        assert info["num_channels"] == c and info["data_type"] == str(case.expected.dtype)
        scale = info["scales"][0]
        assert scale["size"] == [x, y, z] and scale["chunk_sizes"] == [[16, 16, 2]]
        assembled = np.zeros((c, z, y, x), case.expected.dtype)
        for z0 in range(0, z, 2):
            for y0 in range(0, y, 16):
                for x0 in range(0, x, 16):
                    z1, y1, x1 = min(z0 + 2, z), min(y0 + 16, y), min(x0 + 16, x)
                    key = f"{scale['key']}/{x0}-{x1}_{y0}-{y1}_{z0}-{z1}"
                    with urllib.request.urlopen(base + key, timeout=30) as response:
                        data = np.frombuffer(response.read(), case.expected.dtype.newbyteorder("<"))
                    assembled[:, z0:z1, y0:y1, x0:x1] = data.reshape(c, z1 - z0, y1 - y0, x1 - x0)
    np.testing.assert_array_equal(assembled, case.expected[0])
