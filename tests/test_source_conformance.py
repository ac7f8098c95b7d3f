"""Every reader passes the source conformance suite (zarrfs.testing): the TIFF reader on the whole case
matrix, and the in-memory test source the core tests rely on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from array_source import ArraySource
from tiff_cases import CASES

from zarrfs.sources.tiff import TiffSource
from zarrfs.testing import SourceCase, SourceConformance


@pytest.fixture(scope="module")
def case_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("conformance")


def _stored_levels(path: Path, series: int) -> list[np.ndarray]:
    """Reduced levels as tifffile reads them, for 2-D images (canonical order is tifffile's there)."""
    with tifffile.TiffFile(path) as tiff:
        levels = tiff.series[series].levels
        return [level.asarray() for level in levels[1:]] if levels[0].ndim == 2 else []


class TestTiffSource(SourceConformance):
    @pytest.fixture(params=sorted(CASES))
    def case(self, request: pytest.FixtureRequest, case_dir: Path) -> SourceCase:
        directory = case_dir / request.param
        if not directory.exists():
            directory.mkdir()
        made = CASES[request.param](directory)
        files = sorted(str(path) for path in directory.iterdir())
        references = [made.expected, *_stored_levels(made.path, made.series)]
        return SourceCase(lambda: TiffSource(str(made.path), made.series), references, files)


class TestArraySource(SourceConformance):
    @pytest.fixture(params=[((3, 70, 90), "zyx", np.uint16), ((2, 45, 33), "cyx", np.float32)])
    def case(self, request: pytest.FixtureRequest) -> SourceCase:
        shape, axes, dtype = request.param
        data = np.random.default_rng(7).integers(0, 1000, shape).astype(dtype)
        return SourceCase(lambda: ArraySource(data, axes, storage_unit=(1, 16, 16)), [data])
