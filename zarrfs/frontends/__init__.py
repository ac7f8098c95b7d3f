"""Thin front ends over the core: the FUSE daemon and the in-process zarr-python store."""
