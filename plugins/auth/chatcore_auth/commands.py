"""The auth plugin's command handlers: wire messages in, replies out, logic in ``accounts``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from chatcore import protocol
from chatcore.errors import CommandError
from chatcore.users import PASSWORD_CHANGED
from chatcore_auth import NAME
from chatcore_auth.accounts import Accounts, Outcome
from chatcore_auth.names import name_key

if TYPE_CHECKING:
    from chatcore.server import ChatServer
    from chatcore.session import Session

Reply = dict[str, Any]
PENDING_REPLY = "login_reply"
TLS_REQUIRED = ("This server accepts passwords only over an encrypted connection: "
                "reconnect with TLS to log in or register.")


def plaintext_allowed(policy: str, tls: bool, loopback: bool) -> bool:
    """Whether credentials may be sent on this connection under the plaintext ``policy``."""
    return tls or policy == "always" or (policy == "loopback" and loopback)


def _result(kind: str, outcome: Outcome, username: Any = None) -> Reply:
    """A ``<kind>_result`` reply in the legacy shape, plus ``retry_after`` when throttled."""
    reply: Reply = {"type": f"{kind}_result"}
    if username is not None:
        reply["username"] = username
    reply["response"] = "ok" if outcome.ok else "fail"
    if not outcome.ok:
        reply["reason"] = outcome.reason
    if outcome.retry_after:
        reply["retry_after"] = outcome.retry_after
    return reply


class AuthCommands:
    """Handlers for register, login, logout, close, get_users and change_password."""

    def __init__(self, server: "ChatServer", accounts: Accounts, plaintext_policy: str = "loopback") -> None:
        self.server, self.accounts, self.plaintext_policy = server, accounts, plaintext_policy

    def _refuses(self, session: "Session") -> bool:
        """True when this connection may not carry a password (plaintext, against the policy)."""
        return not plaintext_allowed(self.plaintext_policy, session.tls, session.is_loopback)

    def register(self, session: "Session", message: Reply) -> Reply:
        """``register`` {username, password} -> ``register_result``."""
        server, accounts = self.server, self.accounts
        if session.user is not None:  # the contract: "before login"
            raise CommandError("already_authenticated",
                               f"this connection is logged in as {session.user}; log out to register another account")
        username = message["username"]
        if self._refuses(session):
            return _result("register", Outcome(False, TLS_REQUIRED), protocol.echo(username))
        outcome = accounts.register(username, message["password"], session.address[0])
        if outcome.ok:
            server.users.registered(username)
        return _result("register", outcome, protocol.echo(username))

    def login(self, session: "Session", message: Reply) -> Optional[Reply]:
        """``login`` {username, password} -> ``login_result``; then the session is online."""
        server, accounts = self.server, self.accounts
        if session.user is not None:
            raise CommandError("already_authenticated",
                               f"this connection is already logged in as {session.user}; log out first")
        username = message["username"]
        if self._refuses(session):
            return _result("login", Outcome(False, TLS_REQUIRED), protocol.echo(username))
        outcome = accounts.authenticate(username, message["password"], session.address[0])
        if not outcome.ok:
            return _result("login", outcome, protocol.echo(username))
        # The reply is sent once the session is bound (a client that has it is online) and
        # before other plugins' chat_authenticated send anything (offline messages, file
        # offers): the plugin's tryfirst hook calls send_login_reply.
        session.state.setdefault(NAME, {})[PENDING_REPLY] = _result("login", outcome, outcome.username)
        server.login(session, outcome.username)
        self.send_login_reply(session)  # in case the hook did not run first
        return None

    @staticmethod
    def send_login_reply(session: "Session") -> None:
        """Send the ``login_result`` held for ``session``, if any (once)."""
        reply = session.state.get(NAME, {}).pop(PENDING_REPLY, None)
        if reply is not None:
            session.send(reply)

    def logout(self, session: "Session", message: Reply) -> Reply:
        """``logout`` -> ``logout_result``; the connection stays open for another login."""
        server = self.server
        server.logout(session)
        return {"type": "logout_result", "response": "ok"}

    def close(self, session: "Session", message: Reply) -> None:
        """Legacy ``close``: log out, reply ``logout_result``, then close the connection."""
        server = self.server
        if session.user is not None:
            server.logout(session)
        session.send({"type": "logout_result", "response": "ok"})
        session.close("client sent close")

    def get_users(self, session: "Session", message: Reply) -> Reply:
        """``get_users`` -> online users except the requester, as many as fit in one frame.

        If they do not all fit, the reply adds ``has_more`` and ``next_offset``; send
        ``get_users`` again with ``offset`` for the rest.
        """
        server = self.server
        offset = message.get("offset", 0)
        if offset < 0:
            raise CommandError("bad_request", "field 'offset' must be 0 or more")
        me = name_key(session.user or "")
        users = [u for u in server.sessions.online_users() if name_key(u) != me]
        page = users[offset:]
        room = protocol.MAX_JSON - len(protocol.dumps({"type": "get_users", "data": []})) - 64  # has_more, next_offset
        fits = protocol.fitting(page, room)
        reply: Reply = {"type": "get_users", "data": fits}
        if len(fits) < len(page):
            reply.update(has_more=True, next_offset=offset + len(fits))
        return reply

    def change_password(self, session: "Session", message: Reply) -> Reply:
        """``change_password`` {old, new} -> ``change_password_result``."""
        server, accounts = self.server, self.accounts
        assert session.user is not None  # the core checks login before calling
        if self._refuses(session):
            return _result("change_password", Outcome(False, TLS_REQUIRED))
        outcome = accounts.change_password(session.user, message["old"], message["new"], session.address[0])
        if outcome.ok:  # whoever else knew the old password is logged out everywhere but here
            server.users.end_sessions(session.user, PASSWORD_CHANGED, keep=session)
        return _result("change_password", outcome)
