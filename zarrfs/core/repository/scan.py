"""One directory of a repository, read once: which entries are shown under which names, and why the others
are not. Costs one readdir, a stat an entry and, for files not seen before as they are, their first bytes
(the readers' ``claims``)."""

from __future__ import annotations

import errno
import logging
import os
import stat
import time
from dataclasses import dataclass, field

from zarrfs.core.repository.naming import assign_names
from zarrfs.core.repository.nodes import DirectoryNode, ImageNode, Node
from zarrfs.core.repository.options import RepositoryOptions
from zarrfs.core.repository.rules import RULE_FILE, RuleError, SequenceRule, read_rule
from zarrfs.errors import ZarrfsError
from zarrfs.sources.identity import FileIdentity
from zarrfs.sources.registry import REGISTRY, Location
from zarrfs.sources.remote.identity import ObjectIdentity
from zarrfs.sources.sequence.names import natural_key

log = logging.getLogger(__name__)

CONTROL_DIRECTORY = (
    ".zarrfs"  # the root's control directory (stats.json): a real entry of that name is hidden
)
SEQUENCE_KEY = "\0sequence"  # the sequence node's key among real names (no real name holds a NUL)


@dataclass
class Listing:
    """A directory as scanned: served name -> node, names in order (for paged listings), real names not
    shown -> why, and what tells whether the scan is still valid."""

    children: dict[str, Node]
    names: list[str]
    hidden: dict[str, str]
    mtime_ns: int  # the directory's when scanned
    settles_at: float  # wall time at which a file hidden as still being written may be shown
    # Real name -> the identity it had when claimed, and the claiming reader's name (None: no reader).
    claims: dict[str, tuple[FileIdentity | ObjectIdentity, str | None]] = field(default_factory=dict)
    # Served names of images deleted or replaced since an earlier scan -> until when (monotonic) requests
    # inside them fail (see listings.py).
    gone: dict[str, float] = field(default_factory=dict)


_Member = tuple[str, str, os.stat_result]  # a file a sequence rule matches: name, path, status


def _identity(status: os.stat_result) -> FileIdentity:
    return FileIdentity(status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns)


def _changed_at(status: os.stat_result) -> float:
    """When the file last changed: a copy that keeps the mtime (cp -p, rsync -a) still moves the ctime."""
    return max(status.st_mtime, status.st_ctime)


def claiming_reader(location: Location) -> str | None:
    """The name of the first reader that claims ``location``, or None. SourceError when its first bytes
    cannot be read."""
    for reader in REGISTRY.readers():
        try:
            if reader.claims(location):
                return reader.name
        except ZarrfsError:
            raise
        except Exception as error:  # a broken reader (a plugin) must not hide the files others open
            log.warning("reader %s failed on %s: %s", reader.name, location.path, error)
    return None


def _symlink_problem(path: str, directory_real: str, root_real: str, follow: bool) -> str | None:
    """Why the symbolic link at ``path`` is not followed, if it is not."""
    try:
        target = os.path.realpath(path, strict=True)
    except FileNotFoundError:
        return "broken symbolic link"
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "symbolic link loop"
        return f"symbolic link cannot be resolved ({error.strerror})"
    except RuntimeError:  # older Pythons report a loop so
        return "symbolic link loop"
    if not follow and target != root_real and not target.startswith(root_real.rstrip("/") + "/"):
        return "symbolic link leads out of the served directory (see --follow-symlinks)"
    if os.path.isdir(target) and (directory_real + "/").startswith(target.rstrip("/") + "/"):
        return "symbolic link loop (it leads to a directory above it)"
    return None


class _Scan:
    def __init__(self, directory: str, root_real: str, options: RepositoryOptions, previous: Listing | None):
        self.directory = directory
        self.root_real = root_real
        self.options = options
        self.previous = previous.claims if previous is not None else {}
        self.now = time.time()
        self.directory_real = os.path.realpath(directory)
        self.hidden: dict[str, str] = {}
        self.directories: dict[str, DirectoryNode] = {}
        self.images: dict[str, ImageNode] = {}
        self.bases: dict[str, str] = {}  # image key -> the name its served name is made of
        self.claims: dict[str, tuple[FileIdentity | ObjectIdentity, str | None]] = {}
        self.settles_at = float("inf")

    def _settled(self, name: str, status: os.stat_result) -> bool:
        age = self.now - _changed_at(status)
        if age >= self.options.settle_s:
            return True
        self.hidden[name] = "still being written (changed less than --settle seconds ago)"
        self.settles_at = min(self.settles_at, _changed_at(status) + self.options.settle_s)
        return False

    def _claimed(self, name: str, path: str, identity: FileIdentity) -> str | None:
        """The claiming reader's name (None: no reader), reusing the last scan's answer for an unchanged
        entry; SourceError when the file cannot be read."""
        known = self.previous.get(name)
        reader = (
            known[1] if known is not None and known[0] == identity else claiming_reader(Location((path,)))
        )
        self.claims[name] = (identity, reader)
        return reader

    def entry(
        self,
        entry: os.DirEntry[str],
        rule: SequenceRule | None,
        members: list[_Member],
    ) -> None:
        name, path = entry.name, entry.path
        if entry.is_symlink():
            problem = _symlink_problem(
                path, self.directory_real, self.root_real, self.options.follow_symlinks
            )
            if problem is not None:
                self.hidden[name] = problem
                return
        try:
            status = entry.stat()
        except FileNotFoundError:
            return  # deleted since the readdir
        except OSError as error:
            self.hidden[name] = f"cannot be looked up ({error.strerror})"
            return
        identity = _identity(status)
        if stat.S_ISDIR(status.st_mode):
            if not os.access(path, os.R_OK | os.X_OK):
                self.hidden[name] = "no permission to list this directory"
                return
            reader = self._claimed(name, path, identity)
            if reader is None:
                self.directories[name] = DirectoryNode(path)
            elif self._settled(name, status):
                self.images[name] = ImageNode((path,), (identity,), reader)
                self.bases[name] = name
            return
        if not stat.S_ISREG(status.st_mode):
            self.hidden[name] = "not a regular file or directory"
            return
        if rule is not None and rule.matches(name):
            members.append((name, path, status))
            return
        if status.st_size == 0:
            self.hidden[name] = "empty (0 bytes)"
            return
        if not self._settled(name, status):
            return
        try:
            reader = self._claimed(name, path, identity)
        except ZarrfsError as error:
            self.hidden[name] = str(error)
            return
        if reader is None:
            self.hidden[name] = "no reader opens it (not an image format zarrfs knows)"
            return
        self.images[name] = ImageNode((path,), (identity,), reader)
        self.bases[name] = name

    def sequence(self, rule: SequenceRule, members: list[_Member]) -> None:
        if not members:
            self.hidden[RULE_FILE] = f"sequence rule: no file matches {rule.pattern!r}"
            return
        unsettled = [name for name, _, status in members if not self._settled(name, status)]
        if unsettled:
            self.hidden[RULE_FILE] = "sequence rule: some of its files are still being written"
            return
        members.sort(key=lambda member: natural_key(member[0]))
        identities = tuple(_identity(status) for _, _, status in members)
        node = ImageNode(tuple(path for _, path, _ in members), identities, "sequence", rule)
        self.images[SEQUENCE_KEY] = node
        self.bases[SEQUENCE_KEY] = rule.name or os.path.basename(self.directory_real) or "sequence"


def scan_directory(
    directory: str, root_real: str, options: RepositoryOptions, previous: Listing | None
) -> Listing:
    """Scan ``directory`` (a path under the served root ``root_real``, resolved). Raises OSError when it
    cannot be read at all (FileNotFoundError once it is gone)."""
    mtime_ns = os.stat(directory).st_mtime_ns
    with os.scandir(directory) as iterator:
        entries = list(iterator)
    scan = _Scan(directory, root_real, options, previous)
    at_root = scan.directory_real == root_real
    rule = None
    if any(entry.name == RULE_FILE for entry in entries):
        try:
            rule = read_rule(os.path.join(directory, RULE_FILE))
        except (RuleError, OSError) as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
            scan.hidden[RULE_FILE] = f"sequence rule not used: {reason}"
    members: list[_Member] = []
    for entry in entries:
        if entry.name == RULE_FILE:
            continue
        if at_root and entry.name == CONTROL_DIRECTORY:
            scan.hidden[entry.name] = "reserved for zarrfs's control directory"
            continue
        scan.entry(entry, rule, members)
    if rule is not None:
        scan.sequence(rule, members)
    served = assign_names(scan.directories, scan.bases)
    children: dict[str, Node] = {}
    for name, key in served.items():
        children[name] = scan.directories.get(key) or scan.images[key]
    for key in scan.images.keys() - set(served.values()):
        scan.hidden[RULE_FILE if key == SEQUENCE_KEY else key] = (
            "its served name would be longer than 255 bytes"
        )
    return Listing(children, sorted(children), scan.hidden, mtime_ns, scan.settles_at, scan.claims)
