"""Fixtures of the remote-source tests (imported by their modules): the cases, written once per module, and
the servers that serve them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from remote_cases import write_all, write_zarr_stores
from remote_servers import KEY_ID, SECRET, MotoS3, Nginx, moto_s3, nginx


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_all(tmp_path_factory.mktemp("remote-cases"))


@pytest.fixture(scope="module")
def stores(cases: dict[str, Path]) -> dict[str, tuple[str, np.ndarray]]:
    """Zarr and N5 stores beside the cases: their paths relative to the served root, and level 0."""
    root = next(iter(cases.values())).parent
    written = write_zarr_stores(root / "stores")
    return {name: (str(path.relative_to(root)), level) for name, (path, level) in written.items()}


@pytest.fixture(scope="module")
def http(cases: dict[str, Path], stores: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    with nginx(next(iter(cases.values())).parent, tmp_path_factory.mktemp("nginx")) as server:
        yield server


@pytest.fixture(scope="module")
def s3(cases: dict[str, Path], stores: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoS3]:
    """moto's S3 with every case uploaded to BUCKET (with the credentials KEY_ID and SECRET)."""
    with moto_s3(tmp_path_factory.mktemp("moto")) as server:
        server.upload(next(iter(cases.values())).parent)
        yield server


@pytest.fixture
def aws(s3: MotoS3, monkeypatch: pytest.MonkeyPatch) -> MotoS3:
    """The AWS variables of this process (and the commands it runs) pointing at moto with the credentials."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return s3
