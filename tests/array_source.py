"""An in-memory ImageSource over a numpy array: lets core tests control data, failures and read counts."""

from __future__ import annotations

import os
import threading

import numpy as np

from zarrfs.errors import SourceError
from zarrfs.sources import Channel, ImageSource, Level, PhysicalSize, SourceInfo


class ArraySource(ImageSource):
    def __init__(
        self,
        data: np.ndarray,
        axes: str,
        storage_unit: tuple[int, ...] | None = None,
        physical_sizes: dict[str, PhysicalSize] | None = None,
        channels: list[Channel] | None = None,
        failing_regions: set[tuple[int, ...]] | None = None,
    ) -> None:
        self.path = os.path.abspath(__file__)  # a real file: the dataset watches its source for changes
        self.data = data
        self.info = SourceInfo(
            axes=axes,
            dtype=data.dtype,
            levels=[Level(data.shape, storage_unit or (1,) * (data.ndim - 2) + data.shape[-2:])],
            physical_sizes=physical_sizes or {},
            channels=channels or [],
            description="in-memory test array",
        )
        self.failing_starts = failing_regions or set()
        self.reads = 0
        self.closed = False
        self._lock = threading.Lock()

    def read_region(self, level: int, region: tuple[slice, ...]) -> np.ndarray:
        if self.closed:
            raise SourceError("source is closed: in-memory test array")
        with self._lock:
            self.reads += 1
        if tuple(part.start for part in region) in self.failing_starts:
            raise ValueError("corrupt tile")
        return self.data[region].copy()

    def close(self) -> None:
        self.closed = True
