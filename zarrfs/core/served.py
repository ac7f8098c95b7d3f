"""What a front end serves: one image (a Dataset) or, for a directory no reader opens as one image, a
repository of images (zarrfs.core.repository). Both give a tree in one calling convention and close."""

from __future__ import annotations

import os
from collections.abc import Sequence

from zarrfs.core.dataset import Dataset, open_dataset
from zarrfs.core.options import ServeOptions
from zarrfs.core.repository import Repository, RepositoryOptions, is_repository

Served = Dataset | Repository


def open_served(
    source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    options: ServeOptions | None = None,
    repository: RepositoryOptions | None = None,
) -> Served:
    """The image at ``source``, or the repository it is (see is_repository)."""
    options = options or ServeOptions()
    if is_repository(source, options.source):
        assert isinstance(source, str | os.PathLike)
        return Repository.open(source, options, repository or RepositoryOptions())
    return open_dataset(source, options)
