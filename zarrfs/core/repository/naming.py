"""The names under which a repository's images appear: ``<name>.ome.zarr`` with the image extension replaced.

The rule, deterministic for a given directory content:
1. Directories that are mirrored (not images) keep their names; so does nothing else.
2. Images, in sorted order of their real names, each take their short name (``a.tif`` -> ``a.ome.zarr``)
   if no directory and no earlier image took it.
3. Images whose short name was taken then take their full name (``a.tiff`` -> ``a.tiff.ome.zarr``), and if
   that is taken too, ``<full name>~2.ome.zarr``, ``~3`` and so on, the first that is free.
So ``a.tif`` + ``a.tiff`` give ``a.ome.zarr`` (for ``a.tif``) and ``a.tiff.ome.zarr``; no two entries ever
get one name.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping

NODE_SUFFIX = ".ome.zarr"
# Extensions replaced as a whole (longest first); otherwise the last one is.
COMPOUND_EXTENSIONS = (".ome.tiff", ".ome.tif", ".ome.btf", ".ome.zarr", ".nii.gz")
# Linux refuses longer names (ENAMETOOLONG): an image whose name would be longer is not shown.
NAME_MAX_BYTES = 255


def short_name(real_name: str) -> str:
    """``a.tif`` -> ``a.ome.zarr``, ``b.nii.gz`` -> ``b.ome.zarr``, ``c`` -> ``c.ome.zarr``."""
    lowered = real_name.lower()
    for extension in COMPOUND_EXTENSIONS:
        if lowered.endswith(extension) and len(real_name) > len(extension):
            return real_name[: -len(extension)] + NODE_SUFFIX
    stem, dot, _ = real_name.rpartition(".")
    return (stem if dot and stem else real_name) + NODE_SUFFIX


def fits(name: str) -> bool:
    return len(name.encode("utf-8", "surrogateescape")) <= NAME_MAX_BYTES


def assign_names(directories: Iterable[str], images: Mapping[str, str]) -> dict[str, str]:
    """Served name -> key for mirrored ``directories`` (their names are their keys) and ``images`` (key ->
    the name a served name is made of: a file's real name, a sequence rule's name), by the module's rule.
    Images whose every candidate is too long are left out."""
    served = {name: name for name in directories}
    losers: list[str] = []
    for key in sorted(images, key=lambda key: (images[key], key)):
        name = short_name(images[key])
        if name in served or not fits(name):
            losers.append(key)
        else:
            served[name] = key
    for key in losers:
        base = images[key]
        candidates = itertools.chain(
            [base + NODE_SUFFIX], (f"{base}~{number}{NODE_SUFFIX}" for number in itertools.count(2))
        )
        for name in candidates:
            if not fits(name):
                break
            if name not in served:
                served[name] = key
                break
    return served
