"""tifffile's log messages while a file is opened: kept off stderr (the command line prints one error line,
nothing else), turned into a SourceError where they mean the file is corrupt, logged at DEBUG otherwise."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from zarrfs.errors import SourceError

log = logging.getLogger("zarrfs.sources.tiff")

# Messages with which tifffile stops reading the IFD chain and serves the pages before the break as the
# whole file: refused, never a silently shorter stack. (count_ifds finds these first; this catches the IFD
# chains tifffile reads that it does not walk, such as the other files of a multi-file OME-TIFF.)
_CORRUPTION = {
    "invalid circular reference": "IFD chain loops back",
    "invalid page offset": "file is truncated or corrupt: an IFD points beyond the end of the file",
    "invalid offset to page": "file is truncated or corrupt: an IFD is cut off",
    "corrupted tag list": "file is truncated or corrupt: an IFD is unreadable",
}


class _Capture(logging.Filter):
    """Takes the records that the opening thread logs; other threads' records pass untouched, so that
    sources opened at the same time do not see each other's messages."""

    def __init__(self) -> None:
        super().__init__()
        self.thread = threading.get_ident()
        self.records: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if threading.get_ident() != self.thread:
            return True
        self.records.append(record)
        return False


@contextmanager
def tifffile_messages(path: str) -> Iterator[None]:
    """Capture tifffile's messages for the duration; on a clean exit, raise for the first that means
    corruption. (Records logging never creates, under ``logging.disable``, go unseen.)"""
    logger = logging.getLogger("tifffile")
    capture = _Capture()
    logger.addFilter(capture)
    try:
        yield
    finally:
        logger.removeFilter(capture)
        for record in capture.records:
            log.debug("tifffile: %s: %s", path, record.getMessage())
    for record in capture.records:
        message = record.getMessage()
        for marker, problem in _CORRUPTION.items():
            if marker in message:
                raise SourceError(f"{problem} ({_strip_object(message)}): {path}")


def _strip_object(message: str) -> str:
    """tifffile's message without the object it starts with (``<tifffile.TiffPages @8> ...``)."""
    if message.startswith("<"):
        message = message.partition("> ")[2] or message
    return message.splitlines()[0][:160] if message else message
