"""Giving freed memory back to the system once a burst of big allocations is over.

glibc keeps what a burst freed in its arenas for the next allocation: after a storm of logins
the server would hold the memory of its busiest moment. ``IdleTrim`` gives it back (by default
glibc's ``malloc_trim(0)``) once the work has been quiet for ``quiet`` seconds, so a steady
stream keeps reusing the same memory while a storm leaves nothing behind. ``malloc_trim`` cannot
give back the free top of glibc's secondary arena (it trims only the main arena's top), which is
why the auth plugin maps its password hashes' memory itself (``chatcore_auth.argon``); one arena
(``M_ARENA_MAX=1``) would leave none, but costs the relay ~10% in malloc lock contention.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from typing import Callable, Optional

log = logging.getLogger(__name__)


def _load_trim() -> Optional[Callable[[int], int]]:
    try:
        libc = ctypes.CDLL("libc.so.6")
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to give back this way
        return None
    return trim


_malloc_trim = _load_trim()


def trim() -> bool:
    """Return free heap memory to the system now; False where glibc is not the allocator."""
    if _malloc_trim is None:
        return False
    _malloc_trim(0)
    return True


class IdleTrim:
    """``quiet()`` after each burst's last allocation: calls ``release`` (``trim`` unless told
    otherwise; it says whether anything could be given back) once nothing ran for ``quiet`` s."""

    def __init__(self, busy: Callable[[], bool], quiet: float = 2.0,
                 release: Callable[[], bool] = trim) -> None:
        self._busy, self._quiet, self._release = busy, quiet, release
        self._lock = threading.Lock()
        self._last = 0.0
        self._timer: Optional[threading.Timer] = None
        self.trims = 0  # times memory was given back (for tests and diagnostics)
        self.trimmed = threading.Event()  # set at each trim

    def quiet(self) -> None:
        """The work just went idle: trim after ``quiet`` s unless it is busy again by then."""
        with self._lock:
            self._last = time.monotonic()
            if self._timer is None:
                self._start(self._quiet)

    def _start(self, delay: float) -> None:
        self._timer = threading.Timer(delay, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            left = self._last + self._quiet - time.monotonic()
            if left > 0:  # went idle again meanwhile: wait for the end of that quiet
                self._start(left)
                return
            self._timer = None
            if self._busy():
                return  # its end calls quiet() again
        if self._release():
            self.trims += 1
            self.trimmed.set()
            log.debug("gave freed memory back to the system after a quiet %g s", self._quiet)

    def cancel(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
