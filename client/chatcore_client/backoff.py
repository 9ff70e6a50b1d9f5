"""Reconnect delays: exponential from 1 s up to a cap, reset after a successful login."""

from __future__ import annotations


class Backoff:
    """1, 2, 4, … seconds, at most ``cap``."""

    def __init__(self, base: float = 1.0, cap: float = 30.0) -> None:
        self.base, self.cap = base, cap
        self.attempt = 0

    def next(self) -> float:
        """The delay before the next attempt."""
        delay = min(self.cap, self.base * (2 ** self.attempt))
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0
