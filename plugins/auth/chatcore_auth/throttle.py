"""In-memory throttles on an injectable clock: growing delays after failures, a sliding-window
rate limit, and the memory of where each user logged in from. Nothing here is permanent: a key
is forgotten after a quiet window and every delay is capped."""

from __future__ import annotations

import math
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Callable, Hashable, Protocol

Clock = Callable[[], float]


class Failures(Protocol):
    """A failure throttle: this module's in memory, or ``shared_limits``' in Redis."""

    def retry_after(self, key: Hashable) -> float: ...
    def failure(self, key: Hashable) -> None: ...
    def clear(self, key: Hashable) -> None: ...


class Events(Protocol):
    """A rate limit: this module's in memory, or ``shared_limits``' in Redis."""

    def acquire(self, key: Hashable) -> float: ...


class Familiar(Protocol):
    """The memory of where users logged in from: in memory here, or in Redis."""

    def remember(self, user_key: str, address: str) -> None: ...
    def knows(self, user_key: str, address: str) -> bool: ...
    def forget(self, user_key: str) -> None: ...


def seconds_text(seconds: float) -> str:
    """``1 second`` / ``12 seconds``, rounded up so a client never retries too early."""
    whole = max(1, math.ceil(seconds))
    return f"{whole} second{'s' if whole != 1 else ''}"


@dataclass
class _Failures:
    count: int
    last: float
    blocked_until: float


class FailureThrottle:
    """After ``free`` failures within ``window`` seconds, each further failure blocks the key for
    ``base * 2**(n - free)`` seconds, at most ``max_delay``. A success or a quiet window resets it."""

    def __init__(self, clock: Clock, free: int = 5, window: float = 900.0, base: float = 1.0,
                 max_delay: float = 300.0, max_keys: int = 100_000) -> None:
        self._clock = clock
        self.free = max(1, free)
        self.window = window
        self.base = base
        self.max_delay = max_delay
        self._max_keys = max_keys
        self._lock = threading.Lock()
        self._keys: "OrderedDict[Hashable, _Failures]" = OrderedDict()

    def retry_after(self, key: Hashable) -> float:
        """Seconds until ``key`` may try again; 0 when it may try now."""
        now = self._clock()
        with self._lock:
            record = self._keys.get(key)
            if record is None:
                return 0.0
            if now - record.last >= self.window:
                del self._keys[key]
                return 0.0
            return max(0.0, record.blocked_until - now)

    def failure(self, key: Hashable) -> None:
        """Count one failure for ``key`` and block it if it has failed too often."""
        now = self._clock()
        with self._lock:
            record = self._keys.get(key)
            if record is None or now - record.last >= self.window:
                record = _Failures(0, now, now)
            record.count += 1
            record.last = now
            if record.count >= self.free:
                delay = min(self.base * 2 ** min(record.count - self.free, 32), self.max_delay)
                record.blocked_until = now + delay
            self._keys[key] = record
            self._keys.move_to_end(key)
            while len(self._keys) > self._max_keys:
                self._keys.popitem(last=False)

    def clear(self, key: Hashable) -> None:
        """Forget ``key``'s failures (after a success)."""
        with self._lock:
            self._keys.pop(key, None)


class RateLimit:
    """At most ``limit`` events per key in any ``window`` seconds (0 = unlimited)."""

    def __init__(self, clock: Clock, limit: int, window: float, max_keys: int = 100_000) -> None:
        self._clock = clock
        self.limit = limit
        self.window = window
        self._max_keys = max_keys
        self._lock = threading.Lock()
        self._events: "OrderedDict[Hashable, deque[float]]" = OrderedDict()

    def acquire(self, key: Hashable) -> float:
        """Take one event for ``key``: 0 if allowed (and counted), else seconds until allowed."""
        if self.limit <= 0:
            return 0.0
        now = self._clock()
        with self._lock:
            events = self._events.setdefault(key, deque())
            while events and now - events[0] >= self.window:
                events.popleft()
            if len(events) >= self.limit:
                return events[0] + self.window - now
            events.append(now)
            self._events.move_to_end(key)
            while len(self._events) > self._max_keys:
                self._events.popitem(last=False)
            return 0.0


class KnownAddresses:
    """Addresses each user logged in from recently: a login from one of them skips the per-user
    throttle, so a stranger hammering a username cannot lock its owner out."""

    def __init__(self, clock: Clock, ttl: float = 30 * 86400.0, max_entries: int = 100_000) -> None:
        self._clock = clock
        self.ttl = ttl
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._seen: "OrderedDict[tuple[str, str], float]" = OrderedDict()

    def remember(self, user_key: str, address: str) -> None:
        """Note a successful login of ``user_key`` from ``address``."""
        with self._lock:
            self._seen[(user_key, address)] = self._clock() + self.ttl
            self._seen.move_to_end((user_key, address))
            while len(self._seen) > self._max_entries:
                self._seen.popitem(last=False)

    def knows(self, user_key: str, address: str) -> bool:
        """True when ``user_key`` logged in from ``address`` within the last ``ttl`` seconds."""
        with self._lock:
            expires = self._seen.get((user_key, address))
            if expires is None:
                return False
            if expires <= self._clock():
                del self._seen[(user_key, address)]
                return False
            return True

    def forget(self, user_key: str) -> None:
        """Drop every address remembered for ``user_key`` (its account was removed)."""
        with self._lock:
            for key in [key for key in self._seen if key[0] == user_key]:
                del self._seen[key]
