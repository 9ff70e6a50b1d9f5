"""Events for users across the cluster: sent to their sessions on this node and published on the
bus (topic ``filexfer.event``) for the nodes holding their other sessions.

The rows in PostgreSQL are the truth; an event only tells a session that something changed (a
file offered, declined, delivered, expired, cancelled). Events the bus may have lost (a Redis
outage) are made good by offering every local session its waiting files again, as at login.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from chatcore.server import ChatServer
    from chatcore.session import Session

log = logging.getLogger(__name__)

TOPIC = "filexfer.event"


class Notifier:
    """``to_user``: every session of a user, on every node (only this node's on a single node)."""

    def __init__(self, server: "ChatServer", reoffer: "Callable[[Session], None]") -> None:
        self.server = server
        self._reoffer = reoffer
        self.bus = server.cluster.bus if server.cluster is not None else None
        if self.bus is not None:
            self.bus.subscribe(TOPIC, self._heard)
            self.bus.on_resync(self._resync)

    def local(self, user: str, message: dict[str, Any]) -> int:
        """Send ``message`` to ``user``'s sessions on this node; how many took it."""
        return self.server.sessions.broadcast(message, self.server.sessions.of_user(user))

    def to_user(self, user: str, message: dict[str, Any]) -> int:
        """Send ``message`` to ``user``'s sessions here and publish it for the other nodes;
        returns how many sessions of this node took it."""
        if self.bus is not None:
            self.bus.publish(TOPIC, {"user": user, "message": message})
        return self.local(user, message)

    def _heard(self, event: dict[str, Any]) -> None:
        """An event another node published (on the bus reader thread: only queues sends)."""
        user, message = event.get("user"), event.get("message")
        if isinstance(user, str) and isinstance(message, dict) and isinstance(message.get("type"), str):
            self.local(user, message)
        else:
            log.warning("filexfer: ignored a malformed %s event from the bus", TOPIC)

    def _resync(self) -> None:
        """Events may have been lost: offer each local session its waiting files again (in a
        thread of its own, since it reads PostgreSQL and the bus reader must not wait)."""
        threading.Thread(target=self._reoffer_all, name="filexfer-resync", daemon=True).start()

    def _reoffer_all(self) -> None:
        for session in self.server.sessions.authenticated():
            try:
                self._reoffer(session)
            except Exception:
                log.exception("filexfer: re-offering waiting files to %r failed", session)
