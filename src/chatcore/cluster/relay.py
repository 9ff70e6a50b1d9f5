"""What the core tells the other nodes itself: sessions to end (a kick, a removed account, a
new password), announcements and a changed admin flag, so the operator's or an
administrator's action on one node reaches the user's sessions on every node.

Handlers run on the bus reader, which must not wait, so each event's work goes to the
server's worker pool (ending sessions waits for them to log out).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable, Optional

if TYPE_CHECKING:
    from chatcore.server import ChatServer

log = logging.getLogger(__name__)

END_SESSIONS = "core.end_sessions"
ANNOUNCE = "core.announce"
SET_ADMIN = "core.set_admin"


class _Job:
    """A function as the worker pool's unit of work."""

    def __init__(self, work: Callable[[], object]) -> None:
        self.work = work

    def serve(self) -> None:
        try:
            self.work()
        except Exception:
            log.exception("a cluster event's work failed")


def publish_end_sessions(server: "ChatServer", username: str, code: str, reason: str, device: Optional[str]) -> None:
    if server.cluster is not None:
        server.cluster.bus.publish(END_SESSIONS, {"username": username, "code": code, "reason": reason,
                                                  "device": device})


def publish_announcement(server: "ChatServer", message: dict[str, Any]) -> None:
    if server.cluster is not None:
        server.cluster.bus.publish(ANNOUNCE, message)


def publish_admin(server: "ChatServer", username: str, admin: bool) -> None:
    if server.cluster is not None:
        server.cluster.bus.publish(SET_ADMIN, {"username": username, "admin": admin})


def set_admin_locally(server: "ChatServer", username: str, admin: bool) -> int:
    """Apply the flag to this node's sessions of ``username`` and tell them; how many."""
    sessions = server.sessions.of_user(username)
    for session in sessions:
        session.admin = admin
    server.sessions.broadcast({"type": "admin_changed", "admin": admin}, sessions)
    return len(sessions)


def attach(server: "ChatServer") -> None:
    """Subscribe this node to the core's events (cluster mode only)."""
    cluster = server.cluster
    assert cluster is not None

    def later(work: Callable[[], object]) -> None:
        server.workers.submit(_Job(work))

    def end_sessions(event: dict[str, Any]) -> None:
        username, code = str(event.get("username", "")), str(event.get("code", ""))
        device = event.get("device") if isinstance(event.get("device"), str) else None
        if not server.sessions.of_user(username):
            return  # nobody here to end: no worker needed
        later(lambda: server.users.end_sessions(username, code, str(event.get("reason", "")), device=device,
                                                cluster_wide=False))

    def announce(event: dict[str, Any]) -> None:
        later(lambda: server.sessions.broadcast(event, server.sessions.authenticated()))

    def set_admin(event: dict[str, Any]) -> None:
        later(lambda: set_admin_locally(server, str(event.get("username", "")), bool(event.get("admin"))))

    cluster.bus.subscribe(END_SESSIONS, end_sessions)
    cluster.bus.subscribe(ANNOUNCE, announce)
    cluster.bus.subscribe(SET_ADMIN, set_admin)
