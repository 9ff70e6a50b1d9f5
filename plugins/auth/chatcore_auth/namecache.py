"""Display names of accounts known to exist, for ``chat_lookup_user`` in cluster mode.

Other plugins resolve a name for every message they store, and in a cluster the account store
is a PostgreSQL round trip (and a pooled connection) away. Only names that were found are
kept, for ``TTL`` seconds, so an account registered on another node is seen at once; a removal
forgets its name here once the account is deleted, and on the other nodes when its
``auth.forget_name`` event arrives (milliseconds later; the TTL bounds an event lost).
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Callable, Optional

FORGET_NAME = "auth.forget_name"  # bus topic: {username} was removed, forget it
TTL = 30.0  # seconds a found name is trusted without asking the store again
SIZE = 10_000  # names kept at most (the least recently found go first)


class NameCache:
    """casefolded name -> (display name, when it was found)."""

    def __init__(self, ttl: float = TTL, size: int = SIZE, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self.size, self.clock = ttl, size, clock
        self._names: collections.OrderedDict[str, tuple[str, float]] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Optional[str]:
        with self._lock:
            entry = self._names.get(key)
            if entry is None:
                return None
            if self.clock() - entry[1] > self.ttl:
                del self._names[key]
                return None
            return entry[0]

    def put(self, key: str, name: str) -> None:
        with self._lock:
            self._names[key] = (name, self.clock())
            self._names.move_to_end(key)
            while len(self._names) > self.size:
                self._names.popitem(last=False)

    def forget(self, key: str) -> None:
        with self._lock:
            self._names.pop(key, None)
