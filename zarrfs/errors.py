"""Errors that reach a user as one clear line (no traceback)."""


class ZarrfsError(Exception):
    """A problem the user can act on; ``str(error)`` is the whole message, one line."""


class SourceError(ZarrfsError):
    """The source image cannot be opened or read."""


class MountError(ZarrfsError):
    """The mount point, FUSE or the daemon cannot be set up."""
