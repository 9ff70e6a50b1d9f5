"""What one node of a cluster tells the others about users: end this user's sessions (removal,
password change, device revoked, logout everywhere), this user's admin flag changed.

The store is shared, so only live sessions need telling, and each node holds its own. Events
come in on the bus reader thread, which must not block, while ending sessions waits for them
to log out: a small pool of threads does that part.
"""

from __future__ import annotations

import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Iterator, Optional

from chatcore import protocol

if TYPE_CHECKING:
    from chatcore.cluster import Bus, Cluster
    from chatcore.config import Config
    from chatcore.server import ChatServer

log = logging.getLogger(__name__)

END_SESSIONS = "auth.end_sessions"  # {user, code, device?}
ADMIN_CHANGED = "auth.admin"  # {user, admin}
CLI_BLOCK_MS = 50  # how long the command line's bus reader blocks on Redis per read


def end_sessions_event(username: str, code: str, device: Optional[str] = None) -> dict[str, Any]:
    return {"user": username, "code": code, "device": device}


class Fanout:
    """This node's side of the events: publishes its own, applies the other nodes'."""

    def __init__(self, server: "ChatServer", bus: "Bus") -> None:
        self._server, self._bus = server, bus
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="auth-fanout")
        bus.subscribe(END_SESSIONS, self._heard_end)
        bus.subscribe(ADMIN_CHANGED, self._heard_admin)

    def end_sessions(self, username: str, code: str, device: Optional[str] = None) -> None:
        """Have every other node end ``username``'s sessions (of ``device`` only, if named)."""
        self._bus.publish(END_SESSIONS, end_sessions_event(username, code, device))

    def _heard_end(self, event: dict[str, Any]) -> None:
        user, code, device = event.get("user"), event.get("code"), event.get("device")
        if not isinstance(user, str) or not isinstance(code, str) or not isinstance(device, (str, type(None))):
            log.warning("auth: dropped a malformed end_sessions event %r", event)
            return
        if self._server.sessions.of_user(user):
            self._pool.submit(self._end, user, code, device)

    def _end(self, user: str, code: str, device: Optional[str]) -> None:
        try:
            self._server.users.end_sessions(user, code, device=device)
        except Exception:
            log.exception("auth: ending the sessions of %s (%s) for another node failed", user, code)

    def _heard_admin(self, event: dict[str, Any]) -> None:
        """As the admin socket's ``set_admin``: apply the flag to live sessions and tell them."""
        user, admin = event.get("user"), event.get("admin")
        if not isinstance(user, str) or not isinstance(admin, bool):
            log.warning("auth: dropped a malformed admin event %r", event)
            return
        sessions = self._server.sessions.of_user(user)
        for session in sessions:
            session.admin = admin
        if sessions:
            frame = protocol.encode({"type": "admin_changed", "admin": admin})
            for session in sessions:
                session.send_frame(frame)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


@contextlib.contextmanager
def cli_bus(cluster: "Cluster") -> Iterator["Bus"]:
    """The bus for a command-line process, which is no node: started for the block, and what
    was published is written to Redis before it ends. It reads nothing, so its reader waits
    on Redis only briefly: stopping it then takes no noticeable time."""
    cluster.bus.block_ms = CLI_BLOCK_MS
    cluster.bus.start()
    try:
        yield cluster.bus
    finally:
        cluster.bus.stop(flush_timeout=5.0)


def publish_from_cli(config: "Config", topic: str, event: dict[str, Any]) -> bool:
    """Publish one event to every node of the configured cluster; False when not in cluster mode."""
    from chatcore.cluster import open_cluster

    cluster = open_cluster(config)
    if cluster is None:
        return False
    try:
        with cli_bus(cluster) as bus:
            bus.publish(topic, event)
    finally:
        cluster.close()
    return True
