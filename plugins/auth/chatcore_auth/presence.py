"""Presence: ``peer_joined`` / ``peer_left`` that always match who is online.

Sessions of one user may log in and out concurrently (and the core unbinds a disconnecting
session before telling plugins), so instead of trusting each call's first/last flag, every
change reconciles under a per-user lock: it compares what was last announced with who is
online now and sends an event only when they differ. Events for a user therefore alternate
strictly, and the last one sent matches the final state.
"""

from __future__ import annotations

import threading
import zlib
from typing import TYPE_CHECKING

from chatcore_auth.names import name_key

if TYPE_CHECKING:
    from chatcore.session import SessionRegistry

_STRIPES = 64


class Presence:
    """Announces users coming online and going offline to everyone else online."""

    def __init__(self, sessions: "SessionRegistry") -> None:
        self._sessions = sessions
        self._locks = [threading.Lock() for _ in range(_STRIPES)]
        self._announced: set[str] = set()
        self._announced_lock = threading.Lock()

    def update(self, username: str) -> None:
        """Announce ``username``'s current state if it differs from the last announcement."""
        key = name_key(username)
        with self._locks[zlib.crc32(key.encode()) % _STRIPES]:
            online = self._sessions.is_online(username)
            with self._announced_lock:
                if online == (key in self._announced):
                    return
                if online:
                    self._announced.add(key)
                else:
                    self._announced.discard(key)
            event = "peer_joined" if online else "peer_left"
            others = [s for s in self._sessions.authenticated() if s.user and name_key(s.user) != key]
            self._sessions.broadcast({"type": event, "peer": username}, others)
