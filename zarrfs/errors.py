"""Errors that reach a user as one clear line (no traceback)."""


class ZarrfsError(Exception):
    """A problem the user can act on; ``str(error)`` is the whole message, one line."""


class SourceError(ZarrfsError):
    """The source image cannot be opened or read."""


class MountError(ZarrfsError):
    """The mount point, FUSE or the daemon cannot be set up."""


def one_line(error: BaseException) -> str:
    """An exception's message shortened to one line, for error messages that must stay one line."""
    text = str(error).strip().splitlines()
    message = text[0] if text else type(error).__name__
    return message if len(message) <= 160 else message[:157] + "..."
