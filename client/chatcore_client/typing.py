"""Who is typing in which conversation, expiring by itself: the server sends ``typing`` with
``expires_in`` and never a "stopped", so an entry older than that is simply gone. No Tk; the
clock is injected so tests move time instead of sleeping."""

from __future__ import annotations

import time
from typing import Callable

SEND_EVERY = 2.0  # seconds between two typing notices this client sends for one conversation


class Typing:
    """Typists per conversation key, and when this client last said it was typing."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._until: dict[str, dict[str, float]] = {}  # key -> user -> when it expires
        self._sent: dict[str, float] = {}

    def seen(self, key: str, user: str, expires_in: float) -> None:
        """``user`` is typing in ``key`` for the next ``expires_in`` seconds."""
        self._until.setdefault(key, {})[user] = self.clock() + max(0.0, expires_in)

    def stopped(self, key: str, user: str) -> None:
        """``user``'s message arrived: they are done typing it."""
        self._until.get(key, {}).pop(user, None)

    def who(self, key: str) -> list[str]:
        """Who is typing in ``key`` now, by name; expired entries are dropped."""
        now = self.clock()
        users = {user: until for user, until in self._until.get(key, {}).items() if until > now}
        self._until[key] = users
        return sorted(users, key=str.casefold)

    def should_send(self, key: str) -> bool:
        """Whether a key press in ``key`` should tell the server (at most every ``SEND_EVERY`` s)."""
        now = self.clock()
        if now - self._sent.get(key, float("-inf")) < SEND_EVERY:
            return False
        self._sent[key] = now
        return True


def label(users: list[str]) -> str:
    """``alice is typing…``, ``alice and bob are typing…``, ``3 people are typing…``."""
    if not users:
        return ""
    if len(users) == 1:
        return f"{users[0]} is typing…"
    if len(users) == 2:
        return f"{users[0]} and {users[1]} are typing…"
    return f"{len(users)} people are typing…"
