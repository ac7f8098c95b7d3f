"""Consolidated metadata in both layouts: exact copies of the per-node documents, read by zarr-python."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from mounting import mounted


@pytest.fixture
def image(tmp_path: Path) -> tuple[Path, np.ndarray]:
    data = np.random.default_rng(3).integers(0, 4000, (2, 700, 600), dtype=np.uint16)
    path = tmp_path / "image.ome.tif"
    tifffile.imwrite(path, data, tile=(128, 128), compression="zlib", metadata={"axes": "CYX"})
    return path, data


def _documents(root: Path, name: str) -> dict[str, dict]:
    return {
        str(path.relative_to(root)): json.loads(path.read_text())
        for path in sorted(root.rglob(name))
        if path.is_file()
    }


def test_consolidated_metadata_equals_every_document_in_both_layouts(
    image: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    path, data = image
    with mounted(path, tmp_path / "mnt", "--ngff", "all", "--compressor", "zstd") as mnt:
        v2 = {**_documents(mnt, ".zgroup"), **_documents(mnt, ".zattrs"), **_documents(mnt, ".zarray")}
        zmetadata = json.loads((mnt / ".zmetadata").read_text())
        assert zmetadata["zarr_consolidated_format"] == 1
        assert zmetadata["metadata"] == v2
        assert {key for key in v2 if key.endswith(".zarray")} == {"0/.zarray", "1/.zarray"}

        root = json.loads((mnt / "zarr.json").read_text())
        consolidated = root.pop("consolidated_metadata")
        assert consolidated["kind"] == "inline" and consolidated["must_understand"] is False
        arrays = {key.removesuffix("/zarr.json"): doc for key, doc in _documents(mnt, "zarr.json").items()}
        assert consolidated["metadata"] == {key: doc for key, doc in arrays.items() if key != "zarr.json"}
        assert set(consolidated["metadata"]) == {"0", "1"}

        with warnings.catch_warnings():
            warnings.simplefilter("error")
            for zarr_format in (2, 3):
                group = zarr.open_consolidated(mnt, mode="r", zarr_format=zarr_format)
                assert group.metadata.consolidated_metadata is not None
                assert sorted(group.array_keys()) == ["0", "1"]
                np.testing.assert_array_equal(group["0"][...], data)


def test_the_in_process_store_serves_consolidated_metadata(image: tuple[Path, np.ndarray]) -> None:
    import zarrfs

    path, data = image
    for ngff, zarr_format in (("0.4", 2), ("0.5", 3)):
        store = zarrfs.open_store(path, ngff=ngff)
        group = zarr.open_consolidated(store, mode="r", zarr_format=zarr_format)
        np.testing.assert_array_equal(group["0"][...], data)
        assert group["1"].shape == (2, 350, 300)
        store.close()
