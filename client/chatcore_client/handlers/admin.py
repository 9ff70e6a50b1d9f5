"""Handlers for server-wide moderation: ``announcement`` (anyone may receive one) and, for a
server administrator, ``admin_changed`` and the replies to ``admin_announce`` / ``admin_kick``.

Whether this user is an administrator comes from the server (``login_result`` ``admin``,
then ``admin_changed``); the client only decides whether to show the Admin menu, the server
checks every request.
"""

from __future__ import annotations

from typing import Any

from chatcore_client.handlers import Context, Dispatcher
from chatcore_client.state import ROOM


class AdminHandlers:
    """Announcements for everyone, the administrator's commands and their answers."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def register(self, dispatcher: Dispatcher) -> None:
        """Claim this module's event types."""
        for event, handler in {
            "announcement": self.announcement, "admin_changed": self.admin_changed,
            "admin_announce_result": self.announced, "admin_kick_result": self.kicked,
            "error:admin_announce": self.refused, "error:admin_kick": self.refused,
        }.items():
            dispatcher.register(event, handler)

    @property
    def available(self) -> bool:
        """The Admin menu is shown: this user is an administrator on a server that has the commands."""
        return self.ctx.state.admin and self.ctx.state.server.offers("admin_announce", "admin_kick")

    def announce(self, text: str) -> None:
        """Send an announcement to everyone online (answered by ``admin_announce_result``)."""
        self.ctx.send({"command": "admin_announce", "text": text})

    def kick(self, username: str, reason: str = "") -> None:
        """Disconnect a user's sessions (answered by ``admin_kick_result``)."""
        request: dict[str, Any] = {"command": "admin_kick", "username": username}
        if reason:
            request["reason"] = reason
        self.ctx.send(request)

    def announcement(self, message: dict[str, Any]) -> None:
        """``announcement`` {text, by, ts}: a banner over the conversations and a line in the room."""
        text = str(message.get("text") or "")
        by = str(message.get("by") or "")
        if not text:
            return
        self.ctx.notice(ROOM, f"Announcement from {by or 'the server'}: {text}")
        self.ctx.view.announcement(text, by)

    def admin_changed(self, message: dict[str, Any]) -> None:
        """The operator granted or revoked this user's administrator flag: show or hide the menu."""
        self.ctx.state.admin = message.get("admin") is True
        self.ctx.notice(ROOM, "You are now a server administrator." if self.ctx.state.admin
                        else "You are no longer a server administrator.")
        self.ctx.view.admin_changed(self.available)

    def announced(self, message: dict[str, Any]) -> None:
        self.ctx.notice(ROOM, f"Your announcement reached {message.get('delivered', 0)} session(s).")

    def kicked(self, message: dict[str, Any]) -> None:
        self.ctx.notice(ROOM, f"Disconnected {message.get('username')}: {message.get('ended', 0)} session(s).")

    def refused(self, message: dict[str, Any]) -> None:
        self.ctx.view.show_error(f"The server refused: {message.get('reason') or message.get('code')}")
