"""legacy peer-to-peer file signalling: remember who asked whom, so answers go to the asker.

The original server relayed any ``file_response`` to whoever it named, and concurrent
requests got crossed. Here a response is forwarded only when its sender really has an open
request from the user it names; each pair keeps its own queue of requests.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Callable, Optional


@dataclass(frozen=True)
class PendingRequest:
    """One forwarded ``file_request`` still waiting for its answer."""

    requester: str
    target: str
    filename: str
    md5: str
    at: float


class LegacyRelay:
    """Open ``file_request``s by (requester, target), case-insensitive; thread-safe."""

    def __init__(self, clock: Callable[[], float], timeout: float, per_pair: int = 16) -> None:
        self._clock = clock
        self._timeout = timeout
        self.per_pair = per_pair
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str], deque[PendingRequest]] = {}

    def requested(self, requester: str, target: str, filename: str, md5: str) -> None:
        """Record that ``requester`` asked ``target`` (the oldest is dropped past ``per_pair`` open ones)."""
        key = (requester.casefold(), target.casefold())
        with self._lock:
            queue = self._pending.setdefault(key, deque(maxlen=self.per_pair))
            queue.append(PendingRequest(requester, target, filename, md5, self._clock()))

    def answer(self, responder: str, requester: str, md5: Optional[str] = None) -> Optional[PendingRequest]:
        """Take the request ``requester`` made of ``responder`` (the one with ``md5`` if given,
        else the oldest); None if there is no such open request."""
        key = (requester.casefold(), responder.casefold())
        oldest_valid = self._clock() - self._timeout
        with self._lock:
            queue = self._pending.get(key)
            if not queue:
                return None
            while queue and queue[0].at < oldest_valid:
                queue.popleft()
            match = next((r for r in queue if md5 is not None and r.md5.upper() == md5.upper()), None)
            if match is None and queue and md5 is None:
                match = queue[0]
            if match is not None:
                queue.remove(match)
            if not queue:
                del self._pending[key]
            return match

    def forget(self, user: str) -> None:
        """Drop every open request from or to ``user`` (its last session went offline)."""
        folded = user.casefold()
        with self._lock:
            for key in [key for key in self._pending if folded in key]:
                del self._pending[key]

    def __len__(self) -> int:
        with self._lock:
            return sum(len(queue) for queue in self._pending.values())
