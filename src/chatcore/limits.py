"""Per-session and per-address limits: a token bucket for request rates, a connection counter."""

from __future__ import annotations

import threading
import time
from typing import Callable

Clock = Callable[[], float]


class TokenBucket:
    """Allows ``burst`` requests at once, refilled at ``rate`` per second."""

    def __init__(self, rate: float, burst: int, clock: Clock = time.monotonic) -> None:
        self.rate, self.burst, self._clock = rate, burst, clock
        self._tokens = float(burst)
        self._last = clock()

    def take(self) -> bool:
        """Spend one token; False (and nothing spent) when the bucket is empty."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def wait_time(self) -> float:
        """Seconds until the next token."""
        return max(0.0, (1 - self._tokens) / self.rate)


class ConnectionCounter:
    """Open connections in total and per client address, with limits on both."""

    def __init__(self, total: int, per_address: int) -> None:
        self.total_limit, self.per_address_limit = total, per_address
        self._lock = threading.Lock()
        self._total = 0
        self._by_address: dict[str, int] = {}

    def admit(self, address: str) -> str:
        """Count a new connection; returns why it is refused ('' when admitted)."""
        with self._lock:
            if self._total >= self.total_limit:
                return f"the server is full ({self.total_limit} connections)"
            held = self._by_address.get(address, 0)
            if held >= self.per_address_limit:
                return f"{address} already holds {held} connections"
            self._total += 1
            self._by_address[address] = held + 1
            return ""

    def release(self, address: str) -> None:
        with self._lock:
            self._total -= 1
            held = self._by_address.get(address, 1) - 1
            if held:
                self._by_address[address] = held
            else:
                self._by_address.pop(address, None)

    @property
    def total(self) -> int:
        return self._total
