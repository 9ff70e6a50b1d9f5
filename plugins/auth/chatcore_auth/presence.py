"""Presence: ``peer_joined`` / ``peer_left`` that always match who is online.

Sessions of one user may log in and out concurrently (and the core unbinds a disconnecting
session before telling plugins), so instead of trusting each call's first/last flag, every
change reconciles under a per-user lock: it compares what was last announced with who is
online now and sends an event only when they differ. Events for a user therefore alternate
strictly, and the last one sent matches the final state.

Every login tells everyone else online, so N logins cost N² frames. Events are therefore
queued (in order, under the user's lock) and one announcer thread writes each batch as one
concatenated send per online session: 10,000 clients logging in at once cost the server
a few writes per client instead of one per event.
"""

from __future__ import annotations

import threading
import zlib
from typing import TYPE_CHECKING

from chatcore import protocol

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
        self._pending: list[tuple[str, bytes]] = []  # (user key, encoded event), in order
        self._wake = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._announce_loop, name="auth-presence", daemon=True)
        self._thread.start()

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
            frame = protocol.encode({"type": "peer_joined" if online else "peer_left", "peer": username})
            with self._wake:
                self._pending.append((key, frame))
                self._wake.notify()

    def _announce_loop(self) -> None:
        """Send queued events until ``stop``; what is queued when it is called still goes out."""
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._pending or self._stopping)
                if not self._pending:
                    return
                batch, self._pending = self._pending, []
            self._announce(batch)

    def _announce(self, batch: list[tuple[str, bytes]]) -> None:
        """One write per online session: every event in the batch except those about its own user."""
        about = {key for key, _ in batch}
        everything = b"".join(frame for _, frame in batch)
        for session in self._sessions.authenticated():
            user = session.user
            if not user:
                continue
            own = name_key(user)
            frames = everything if own not in about else b"".join(f for key, f in batch if key != own)
            if frames:
                session.send_frame(frames)

    def stop(self) -> None:
        """Send what is queued, then end the announcer thread."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._thread.join()
