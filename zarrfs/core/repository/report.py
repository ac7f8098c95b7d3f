"""What ``zarrfs info DIR`` prints for a repository: every image node with its source and shape (or why it
cannot be served), and every entry that is not shown, with the reason."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

from zarrfs.core.describe import printable
from zarrfs.core.repository.nodes import DirectoryNode, ImageNode
from zarrfs.core.repository.pool import ImageOpenError
from zarrfs.core.repository.tree import RepositoryTree


@dataclass
class Report:
    lines: list[str]
    images: int
    failed: int
    hidden: int


def _walk(tree: RepositoryTree, path: str) -> Iterator[tuple[str, str, DirectoryNode | ImageNode | str]]:
    """(served path, real path, node or reason not shown) for everything below ``path``, depth first."""
    try:
        listing = tree.listing(path)
    except OSError:
        return  # vanished while walked
    for name in listing.names:
        node = listing.children[name]
        served = f"{path}/{name}" if path else name
        yield served, node.path if isinstance(node, DirectoryNode) else node.label, node
        if isinstance(node, DirectoryNode):
            yield from _walk(tree, served)
    for real, reason in sorted(listing.hidden.items()):
        yield os.path.join(path, real), real, reason


def report(tree: RepositoryTree) -> Report:
    """Opens every image (one at a time, through the tree's pool)."""
    lines = [f"repository: {printable(tree.root)}"]
    images = failed = hidden = 0
    for served, real, node in _walk(tree, ""):
        if isinstance(node, str):
            hidden += 1
            lines.append(f"  not shown  {printable(served)}: {printable(node)}")
        elif isinstance(node, ImageNode):
            images += 1
            source = tree.access.relative(real)
            try:
                with tree.images.using(node) as dataset:
                    info = dataset.source.info
                    shape = "x".join(map(str, info.levels[0].shape))
                    what = f"{node.reader} {info.axes} {shape} {info.dtype}"
            except ImageOpenError as error:
                failed += 1
                what = f"cannot be served: {error.reason}"
            lines.append(f"  image      {printable(served)} <- {printable(source)}: {printable(what)}")
    lines.append(f"{images} images ({failed} cannot be served), {hidden} entries not shown")
    return Report(lines, images, failed, hidden)
