"""A full disk, told apart from other storage failures, and logged without flooding the log.

The spool reports ``ENOSPC``/``EDQUOT``, the index ``sqlite3.OperationalError`` with
``SQLITE_FULL``, PostgreSQL (cluster mode) SQLSTATE ``53100`` (disk_full); either way the request is refused with ``disk_full``. While the disk stays
full nearly every request fails, so the log gets one WARNING per interval with a count,
not a traceback per request.
"""

from __future__ import annotations

import errno
import logging
import sqlite3
import threading
from typing import Callable, Optional

log = logging.getLogger(__name__)

WARN_EVERY = 60.0  # seconds between two warnings about the same full disk
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
PG_DISK_FULL = "53100"


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` means the disk (or the user's disk quota) has no room left."""
    if getattr(exc, "sqlstate", None) == PG_DISK_FULL:  # a psycopg error
        return True
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)  # the extended code: its low byte is the primary one
        return isinstance(code, int) and code & 0xFF == sqlite3.SQLITE_FULL
    return isinstance(exc, OSError) and exc.errno in FULL_ERRNOS


class DiskFullLog:
    """Counts what a full disk made fail: the first is logged at once, then at most one WARNING
    per ``interval`` seconds, saying how many failed meanwhile."""

    def __init__(self, where: object, clock: Callable[[], float], interval: float = WARN_EVERY) -> None:
        self.where, self.clock, self.interval = where, clock, interval
        self._lock = threading.Lock()
        self._warned: Optional[float] = None  # when the last warning was logged
        self._unlogged = 0  # failures since then

    def failed(self, what: str) -> None:
        """Count one request (or bookkeeping write) that failed for lack of space; maybe warn."""
        now = self.clock()
        with self._lock:
            self._unlogged += 1
            if self._warned is not None and 0 <= now - self._warned < self.interval:
                return
            count, since = self._unlogged, self._warned
            self._unlogged, self._warned = 0, now
        if count == 1:
            log.warning("filexfer: the disk under %s is full: %s failed; later failures are counted and "
                        "logged at most every %g s", self.where, what, self.interval)
        else:
            log.warning("filexfer: the disk under %s is still full: %d writes failed for lack of space "
                        "in the last %.0f s, the latest %s", self.where, count, now - (since or now), what)
