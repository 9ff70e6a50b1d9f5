"""Giving freed memory back to the system once a burst of big allocations is over.

A password hash takes ``memory_kib`` (19 MiB by default) from malloc and frees it, and glibc
then keeps it in its arena for the next one: after a storm of logins the server holds the
hashing memory of its busiest moment (~100 MiB here for 1,000 logins at once). ``IdleTrim``
calls glibc's ``malloc_trim(0)`` once the work has been quiet for ``quiet`` seconds, so a
storm leaves less behind while a steady stream of logins keeps reusing the same memory.
What ``malloc_trim`` cannot give back is the free top of glibc's secondary arena (it trims only
the main arena's top): 25-45 MiB after a 1,000-login storm here, against 46-106 MiB before.
One arena (``M_ARENA_MAX=1``) leaves none, but costs the relay ~10% in malloc lock contention
(``./dev bench perf pairs``: 38.5 -> 41.3-43.5 us per message), so the server keeps two.
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
    """``quiet()`` after each burst's last allocation: trims once nothing ran for ``quiet`` s."""

    def __init__(self, busy: Callable[[], bool], quiet: float = 2.0) -> None:
        self._busy, self._quiet = busy, quiet
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
        if trim():
            self.trims += 1
            self.trimmed.set()
            log.debug("gave freed memory back to the system after a quiet %g s", self._quiet)

    def cancel(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
