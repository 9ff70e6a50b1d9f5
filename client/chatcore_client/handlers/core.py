"""Handlers for the core's own events: ``hello``, ``shutdown`` and ``session_ended``
(``pong`` belongs to the keep-alive, which the app registers itself)."""

from __future__ import annotations

from typing import Any

from chatcore_client.api import ServerInfo
from chatcore_client.handlers import Context, Dispatcher
from chatcore_client.state import ROOM

# What to tell the user when the server ends a session on purpose without saying why itself.
SESSION_ENDED = {
    "account_removed": "Your account was removed by the server's operator.",
    "password_changed": "Your password was changed, on another device or by the server's operator. "
                        "Log in with the new password.",
}


class CoreHandlers:
    """What the server itself says, whichever plugins it runs."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def register(self, dispatcher: Dispatcher) -> None:
        """Claim this module's event types."""
        for event, handler in {"hello": self.hello, "shutdown": self.shutdown,
                               "session_ended": self.session_ended}.items():
            dispatcher.register(event, handler)

    def hello(self, message: dict[str, Any]) -> None:
        """Remember what the server offers; the view hides what is missing."""
        self.ctx.state.server = ServerInfo(message)
        self.ctx.view.server_info(self.ctx.state.server)

    def shutdown(self, message: dict[str, Any]) -> None:
        self.ctx.notice(ROOM, str(message.get("reason") or "The server is shutting down."))

    def session_ended(self, message: dict[str, Any]) -> None:
        """``session_ended`` {code, reason}: the server ends this session on purpose (the account was
        removed, the password changed, more may come) and closes it. The credentials are forgotten,
        so nothing logs in with them again, and the view goes back to the Login window with why."""
        code = str(message.get("code") or "")
        reason = str(message.get("reason") or SESSION_ENDED.get(code) or "The server ended your session.")
        self.ctx.credentials = None
        self.ctx.keep_token(None)
        self.ctx.view.session_ended(reason)
