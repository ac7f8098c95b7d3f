"""The FUSE-free core: the virtual OME-Zarr tree over a source, chunk translation, encoding and caching."""

from zarrfs.core.dataset import Dataset, build_dataset, open_dataset
from zarrfs.core.options import ServeOptions
from zarrfs.core.tree import DIRECTORY, Entry, VirtualTree

__all__ = ["DIRECTORY", "Dataset", "Entry", "ServeOptions", "VirtualTree", "build_dataset", "open_dataset"]
