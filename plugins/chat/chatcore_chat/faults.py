"""What a failed chat store operation means, and what its sender is told.

A refusal (a quota) is the expected answer to a request and is never logged; a full disk is
an answer too (``storage_full``) and costs one warning per interval, not a traceback per
message; anything else is a fault (``internal_error``, logged with its traceback).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from typing import Any, Callable, Optional

WARNING_INTERVAL = 60.0  # seconds between two warnings about the same recurring condition


class Refused(Exception):
    """Raised by an operation's ``apply`` to decline (a quota): its ``failed`` answers the sender."""

    def __init__(self, code: str, reason: str, **extra: Any) -> None:
        super().__init__(reason)
        self.code, self.reason, self.extra = code, reason, extra


def storage_full(error: BaseException) -> bool:
    """True when SQLite reported the disk (or the database) full."""
    return isinstance(error, sqlite3.OperationalError) and \
        getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL


def database_unreachable(error: BaseException) -> bool:
    """True when PostgreSQL (cluster mode) could not be reached or dropped the connection."""
    try:
        import psycopg
    except ImportError:  # pragma: no cover - a core dependency
        return False
    return isinstance(error, psycopg.OperationalError) or type(error).__name__ == "DatabaseUnavailable"


def answer(error: BaseException) -> dict[str, Any]:
    """The ``code``, ``reason`` (and extra fields) of the ``error`` reply for a write that failed."""
    if isinstance(error, Refused):
        return {"code": error.code, "reason": error.reason, **error.extra}
    if storage_full(error):
        return {"code": "storage_full", "reason": "the server's storage is full; the message was not stored"}
    if database_unreachable(error):
        return {"code": "unavailable", "reason": "the database is unreachable; nothing was stored: try again"}
    return {"code": "internal_error", "reason": "the message could not be stored"}


class Throttled:
    """At most one WARNING per ``interval`` for a recurring condition, with a count of what
    happened since the previous one; ``over`` says (as INFO, again at most once an interval)
    that the condition ended, with what was not reported yet. A condition that flaps costs
    two lines an interval at most."""

    def __init__(self, logger: logging.Logger, what: str, ended: str, interval: float = WARNING_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._log, self._what, self._ended = logger, what, ended
        self._interval, self._clock = interval, clock
        self._lock = threading.Lock()
        self._last: Optional[float] = None  # when the last warning went out; None: condition not active
        self._count = 0  # occurrences not yet reported
        self.active = False  # read without the lock on hot paths: a stale value only delays ``over``

    def note(self, count: int = 1, detail: object = "") -> None:
        """The condition happened ``count`` more times; warn if the last warning is old enough."""
        with self._lock:
            self._count += count
            self.active = True
            now = self._clock()
            if self._last is not None and now - self._last < self._interval:
                return
            count, self._count, self._last = self._count, 0, now
        self._log.warning("%s: %d since the last warning%s (next warning in %g s at the earliest)",
                          self._what, count, f"; {detail}" if detail else "", self._interval)

    def over(self) -> None:
        """The condition seems to have ended: say so, unless the last line is too recent."""
        with self._lock:
            now = self._clock()
            if not self.active or (self._last is not None and now - self._last < self._interval):
                return
            count, self._count, self._last, self.active = self._count, 0, now, False
        self._log.info("%s (%d more since the last warning)", self._ended, count)
