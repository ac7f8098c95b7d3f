"""zarrfs: serve microscopy images (TIFF, HDF5, NIfTI, Zarr/N5, file sequences) as live read-only OME-Zarr."""

from zarrfs.errors import MountError, SourceError, ZarrfsError

__version__ = "0.1.0"

__all__ = ["MountError", "SourceError", "ZarrfsError", "__version__", "open_store"]


def __getattr__(name: str) -> object:
    # Imported lazily: zarr-python is heavy and the FUSE daemon does not need it.
    if name == "open_store":
        from zarrfs.frontends.store import open_store

        return open_store
    raise AttributeError(f"module 'zarrfs' has no attribute {name!r}")
