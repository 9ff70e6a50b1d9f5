"""Server-wide moderation: announcements to everyone, kicking a user, and the client commands
that let a server administrator do both.

An *administrator* is an account the operator flagged (``chatcore user admin NAME``); the
accounts plugin sets ``session.admin`` at login and the operator's change reaches live
sessions over the admin socket. The check is here, on the server, for every request: a
client's menu is only a convenience. The operator does the same from the shell
(``chatcore announce``, ``chatcore kick``) through ``chatcore.control``.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Optional

from chatcore import protocol
from chatcore.cluster.relay import publish_announcement
from chatcore.errors import CommandError
from chatcore.users import KICKED, REASONS

if TYPE_CHECKING:
    from chatcore.server import ChatServer
    from chatcore.session import Session

log = logging.getLogger(__name__)

ANNOUNCE_MAX = 2000  # characters of one announcement (fits a frame with room to spare)
REASON_MAX = 500  # characters of a kick's reason


def text_problem(text: Any, what: str, maximum: int) -> Optional[str]:
    """Why ``text`` cannot be sent as ``what``, or None."""
    if not isinstance(text, str) or not text.strip():
        return f"the {what} is empty"
    if len(text) > maximum:
        return f"the {what} is longer than {maximum} characters"
    return None


def announce(server: "ChatServer", text: str, by: str = "") -> int:
    """Send ``announcement`` {text, by, ts} to every logged-in session; how many took it (on
    this node: other nodes of a cluster deliver theirs). ``by`` is the administrator's name,
    "" for the operator."""
    message = {"type": "announcement", "text": text, "by": by, "ts": protocol.timestamp(int(time.time() * 1000))}
    delivered = server.sessions.broadcast(message, server.sessions.authenticated())
    publish_announcement(server, message)  # cluster mode: the other nodes' sessions too
    log.info("announcement by %s to %d session(s)", by or "the operator", delivered)
    return delivered


def kick_reason(reason: str = "", by: str = "") -> str:
    """The ``session_ended`` reason a kicked session shows."""
    who = f"The administrator {by}" if by else "An administrator"
    base = REASONS[KICKED].replace("An administrator", who)
    return f"{base.rstrip('.')}: {reason.strip()}" if reason.strip() else base


def kick(server: "ChatServer", username: str, device: Optional[str] = None, reason: str = "", by: str = "",
         keep: Optional["Session"] = None) -> int:
    """End the user's sessions (those of ``device`` only, if named) with ``session_ended``
    ``kicked``; returns how many. Only a kick: the account and its device tokens stay."""
    ended = server.users.end_sessions(username, KICKED, kick_reason(reason, by), keep=keep, device=device or None)
    log.info("%s kicked %s%s: %d session(s)", by or "the operator", username,
             f" (device {device})" if device else "", ended)
    return ended


class ModerationCommands:
    """The core's ``admin_announce`` and ``admin_kick``: refused (``not_admin``) unless the
    session belongs to a server administrator."""

    def __init__(self, server: "ChatServer") -> None:
        self.server = server

    @staticmethod
    def _require_admin(session: "Session", what: str) -> str:
        if session.user is None or not session.admin:
            raise CommandError("not_admin", f"only server administrators may {what}")
        return session.user

    def admin_announce(self, session: "Session", message: dict[str, Any]) -> dict[str, Any]:
        """``admin_announce`` {text} -> ``admin_announce_result`` {delivered}."""
        by = self._require_admin(session, "send announcements")
        problem = text_problem(message["text"], "announcement", ANNOUNCE_MAX)
        if problem is not None:
            raise CommandError("bad_request", problem)
        return {"type": "admin_announce_result", "delivered": announce(self.server, message["text"], by)}

    def admin_kick(self, session: "Session", message: dict[str, Any]) -> dict[str, Any]:
        """``admin_kick`` {username, device?, reason?} -> ``admin_kick_result`` {username, ended}."""
        by = self._require_admin(session, "kick users")
        reason = message.get("reason", "")
        if len(reason) > REASON_MAX:
            raise CommandError("bad_request", f"the reason is longer than {REASON_MAX} characters")
        target = self.server.lookup_user(message["username"])
        if target is None:
            raise CommandError("unknown_user", f"no user {protocol.echo(message['username'])!r}")
        ended = kick(self.server, target, message.get("device"), reason, by, keep=session)
        return {"type": "admin_kick_result", "username": target, "ended": ended}
