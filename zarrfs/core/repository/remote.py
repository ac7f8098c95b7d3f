"""A repository at a URL: an S3 prefix (or any fsspec protocol that lists), or an HTTP directory whose index
page links its entries (nginx's ``autoindex on;``, Apache's directory listings).

A directory costs one listing request (fsspec ``ls``). Each object is an entry whose identity (size, ETag,
Last-Modified) stands in for a local file's inode and times; a reader claims it from its name and first bytes,
read with one range request (PROBE_BYTES) that also gives the identity, and the claim is kept by identity as
a local scan keeps it: an S3 listing gives every identity, so an unchanged object costs no request at all;
an HTTP index page gives names only, so there each object is probed again at each rescan. There is no cheap
version of a remote directory (no mtime): a kept listing is used for REMOTE_RECHECK_S, then listed again.

Nodes and directories are named by their URLs as they may be shown (without credentials); the URL with
credentials is made from the served root's only when an object is read. Zarr and N5 stores under the prefix
are not recognised (claiming one costs requests for each directory): they are mirrored as directories.
"""

from __future__ import annotations

import asyncio
import errno
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote, unquote

from zarrfs.core.dataset import Dataset, SharedCaches
from zarrfs.core.options import ServeOptions
from zarrfs.core.repository.access import TreeAccess
from zarrfs.core.repository.naming import assign_names
from zarrfs.core.repository.nodes import DirectoryNode, ImageNode, Node, open_node
from zarrfs.core.repository.options import RepositoryOptions
from zarrfs.core.repository.rules import RULE_FILE
from zarrfs.core.repository.scan import CONTROL_DIRECTORY, Listing, claiming_reader
from zarrfs.core.staleness import SourceChangedError
from zarrfs.errors import SourceError, ZarrfsError
from zarrfs.sources.identity import FileIdentity
from zarrfs.sources.registry import Location
from zarrfs.sources.remote.access import KnownStart, ObjectAccess, access_for, describe_failure
from zarrfs.sources.remote.filesystems import remote_filesystem
from zarrfs.sources.remote.identity import ObjectIdentity, RemoteError
from zarrfs.sources.remote.location import ProbedLocation
from zarrfs.sources.remote.objects import RemoteObject, url_secrets
from zarrfs.sources.remote.options import RemoteOptions
from zarrfs.sources.remote.transfer import attempt, loop_of, run
from zarrfs.sources.remote.urls import protocol, redact, scrub

# A remote listing is used this long before the directory is listed again: new objects show within this
# (plus --settle after their Last-Modified). Longer than a local directory's: a listing is a request.
REMOTE_RECHECK_S = 3.0
# The first bytes of each object a listing reads to let readers claim it (a gzipped NIfTI's header inflates
# from them; TIFF, HDF5 and NIfTI need far fewer).
PROBE_BYTES = 16 * 2**10
# Objects probed at once while a directory is listed.
PROBES_AT_ONCE = 32


def _listed_identity(entry: dict[str, Any]) -> ObjectIdentity | None:
    """The identity a listing gives (S3: size, ETag, LastModified); None when it gives no size (an HTTP
    index page)."""
    if entry.get("size") is None:
        return None
    modified = entry.get("LastModified") or entry.get("mtime") or entry.get("last_modified")
    mtime_ns = int(modified.timestamp() * 1e9) if isinstance(modified, datetime) else 0
    tag = entry.get("ETag") or entry.get("etag")
    return ObjectIdentity(int(entry["size"]), None if tag is None else str(tag), None, mtime_ns)


def _same_object(listed: ObjectIdentity, now: ObjectIdentity) -> bool:
    """Whether ``now`` is the object ``listed``: by size and ETag where both have one (a listing's and a
    request's Last-Modified differ in precision), else by everything they have."""
    if listed.etag and now.etag:
        return listed.size == now.size and listed.etag == now.etag
    return listed.change_to(now) is None


class RemoteTree(TreeAccess):
    recheck_s = REMOTE_RECHECK_S

    def __init__(self, url: str, options: RemoteOptions) -> None:
        self.url = url if url.endswith("/") else url + "/"  # may hold credentials: never shown
        self.options = options
        self.root = redact(self.url)
        self.http = protocol(self.url) in ("http", "https")
        self._secrets = (*options.secrets(), *url_secrets(self.url))
        self._opened_ns = time.time_ns()

    def real(self, shown: str) -> str:
        """The URL (credentials included) of ``shown``, a URL under ``root`` as it is shown."""
        return self.url + shown[len(self.root) :]

    def relative(self, path: str) -> str:
        relative = path[len(self.root) :]
        return unquote(relative) if self.http else relative

    def version(self, directory: str) -> int | None:
        return None

    def mtime_ns(self) -> int:
        return self._opened_ns

    def _access(self, shown: str) -> ObjectAccess:
        fs, path = remote_filesystem(self.real(shown), self.options)
        return access_for(fs, path, shown)

    def list_directory(self, directory: str) -> list[tuple[str, dict[str, Any]]]:
        """The entries directly in ``directory`` (one listing request), by name; links of an index page to
        anything else (above, deeper, a query such as a sort order) left out."""
        fs, path = remote_filesystem(self.real(directory), self.options)

        async def listed() -> list[dict[str, Any]]:
            if getattr(fs, "async_impl", False):
                entries: list[dict[str, Any]] = await fs._ls(path, detail=True, refresh=True)
                return entries
            return await asyncio.to_thread(fs.ls, path, detail=True, refresh=True)

        try:
            entries = run(loop_of(fs), lambda: attempt(listed, f"LIST {directory}"))
        except FileNotFoundError:
            raise FileNotFoundError(errno.ENOENT, "not found", directory) from None
        except Exception as error:
            raise OSError(errno.EIO, f"listing failed ({self.reason(error)})") from None
        base = path.rstrip("/") + "/"
        children = []
        for entry in entries:
            name = str(entry["name"])
            relative = name[len(base) :].rstrip("/") if name.startswith(base) else ""
            if relative and not any(mark in relative for mark in "/?#"):
                children.append((unquote(relative) if self.http else relative, entry))
        return children

    def probe(self, shown: Sequence[str]) -> list[tuple[ObjectIdentity, bytes] | BaseException]:
        """Identity and first bytes of each object, PROBES_AT_ONCE at a time (an error in place of those
        that fail)."""
        if not shown:
            return []
        accesses = [self._access(name) for name in shown]
        limit = asyncio.Semaphore(PROBES_AT_ONCE)

        async def one(access: ObjectAccess) -> tuple[ObjectIdentity, bytes]:
            async with limit:
                return await attempt(lambda: access.probe(PROBE_BYTES), f"GET {access.name} [probe]")

        async def every() -> list[tuple[ObjectIdentity, bytes] | BaseException]:
            return list(await asyncio.gather(*(one(access) for access in accesses), return_exceptions=True))

        return run(accesses[0].loop, every)

    def claim(self, shown: str, identity: ObjectIdentity, first: bytes) -> str | None:
        access = self._access(shown)
        remote = RemoteObject.known(KnownStart(access, first), identity, self.real(shown), self.options)
        location = ProbedLocation(self.real(shown), self.options, remote, first)
        return claiming_reader(Location((shown,), remote=location))

    def scan(self, directory: str, options: RepositoryOptions, previous: Listing | None) -> Listing:
        at_root = directory == self.root
        hidden: dict[str, str] = {}
        directories: dict[str, DirectoryNode] = {}
        objects: dict[str, ObjectIdentity | None] = {}
        for name, entry in self.list_directory(directory):
            is_directory = entry.get("type") == "directory"
            if is_directory and at_root and name == CONTROL_DIRECTORY:
                hidden[name] = "reserved for zarrfs's control directory"
            elif is_directory:
                directories[name] = DirectoryNode(directory + self.quoted(name) + "/")
            elif name == RULE_FILE:
                hidden[name] = "sequence rules apply to local directories only"
            else:
                objects[name] = _listed_identity(entry)
        scan = _ObjectScan(self, directory, options, previous)
        scan.probe([name for name, identity in objects.items() if scan.needs_probe(name, identity)])
        for name, identity in objects.items():
            scan.entry(name, identity)
        hidden.update(scan.hidden)
        served = assign_names(directories, {name: name for name in scan.images})
        children: dict[str, Node] = {
            name: directories.get(key) or scan.images[key] for name, key in served.items()
        }
        for name in scan.images.keys() - set(served.values()):
            hidden[name] = "its served name would be longer than 255 bytes"
        return Listing(children, sorted(children), hidden, 0, float("inf"), scan.claims)

    def quoted(self, name: str) -> str:
        return quote(name) if self.http else name

    def reason(self, error: BaseException) -> str:
        """A failure in words, without secrets."""
        said = str(error) if isinstance(error, ZarrfsError) else describe_failure(error)
        return scrub(said, self._secrets)

    def changed(self, node: ImageNode) -> bool:
        listed = zip(node.paths, node.identities, strict=True)
        return any(
            isinstance(identity, ObjectIdentity) and self._changed(shown, identity)
            for shown, identity in listed
        )

    def _changed(self, shown: str, listed: ObjectIdentity) -> bool:
        """Whether the object at ``shown`` is another than ``listed`` now (one HEAD); False when that cannot
        be told."""
        access = self._access(shown)
        try:
            now = run(access.loop, lambda: attempt(access.head, f"HEAD {shown}"))
        except RemoteError as error:
            return error.status in (403, 404, 410)
        except Exception:
            return False
        return not _same_object(listed, now)

    def open(self, node: ImageNode, options: ServeOptions, shared: SharedCaches) -> Dataset:
        """The node's object opened (one HEAD, then its reader's requests) and served only if it is the
        object listed: one replaced since is another node, found by the next listing."""
        (shown,) = node.paths
        dataset = open_node(node, options, shared, self.real(shown))
        opened = dataset.watch.opened.get(shown)
        (listed,) = node.identities
        now = getattr(opened, "identity", None)
        if (
            not isinstance(listed, ObjectIdentity)
            or not isinstance(now, ObjectIdentity)
            or not _same_object(listed, now)
        ):
            dataset.close()
            raise SourceChangedError(f"{shown} was replaced since it was listed")
        return dataset


class _ObjectScan:
    """The objects of one directory: which are shown as image nodes, and why the others are not."""

    def __init__(
        self, tree: RemoteTree, directory: str, options: RepositoryOptions, previous: Listing | None
    ) -> None:
        self.tree = tree
        self.directory = directory
        self.options = options
        self.known = previous.claims if previous is not None else {}
        self.probed: dict[str, tuple[ObjectIdentity, bytes] | BaseException] = {}
        self.hidden: dict[str, str] = {}
        self.images: dict[str, ImageNode] = {}
        self.claims: dict[str, tuple[FileIdentity | ObjectIdentity, str | None]] = {}
        self.now = time.time()

    def needs_probe(self, name: str, listed: ObjectIdentity | None) -> bool:
        """Objects the listing gives no identity of, and those not claimed as they are now."""
        if listed is None:
            return True
        before = self.known.get(name)
        return listed.size > 0 and (before is None or before[0] != listed)

    def probe(self, names: list[str]) -> None:
        shown = [self.directory + self.tree.quoted(name) for name in names]
        self.probed = dict(zip(names, self.tree.probe(shown), strict=True))

    def entry(self, name: str, listed: ObjectIdentity | None) -> None:
        answer = self.probed.get(name)
        if isinstance(answer, BaseException):
            self.hidden[name] = f"cannot be read ({self.tree.reason(answer)})"
            return
        identity = listed or (answer[0] if answer is not None else None)
        if identity is None or identity.size == 0:
            self.hidden[name] = "empty (0 bytes)"
            return
        if answer is not None and not _same_object(identity, answer[0]):
            self.hidden[name] = "replaced while it was listed (shown at the next listing)"
            return
        if identity.mtime_ns and abs(self.now - identity.mtime_ns / 1e9) < self.options.settle_s:
            self.hidden[name] = "still being written (changed less than --settle seconds ago)"
            return
        shown = self.directory + self.tree.quoted(name)
        before = self.known.get(name)
        if before is not None and before[0] == identity:
            reader = before[1]
        else:
            assert answer is not None  # an object not claimed as it is now was probed (needs_probe)
            try:
                reader = self.tree.claim(shown, identity, answer[1])
            except ZarrfsError as error:
                self.hidden[name] = self.tree.reason(error)
                return
        self.claims[name] = (identity, reader)
        if reader is None:
            self.hidden[name] = "no reader opens it (not an image format zarrfs knows)"
        else:
            self.images[name] = ImageNode((shown,), (identity,), reader)


def is_remote_repository(url: str, options: RemoteOptions) -> bool:
    """Whether ``url`` names a prefix (it ends in ``/``: a URL without is an object's, and asking would cost
    every remote source a request) that no reader opens as one store. A one-line SourceError when it cannot
    be listed: a prefix with nothing under it (not found), a server that lists no directories (403)."""
    from zarrfs.sources.registry import REGISTRY

    if not url.split("?", 1)[0].endswith("/"):
        return False
    location = Location.of(url, options)
    if any(reader.claims(location) for reader in REGISTRY.readers()):
        return False
    try:
        RemoteTree(url, options).list_directory(redact(url))
    except FileNotFoundError:
        raise SourceError(f"not found: nothing is listed under {redact(url)}") from None
    except OSError as error:
        raise SourceError(f"cannot list {redact(url)}: {error.strerror}") from None
    return True
