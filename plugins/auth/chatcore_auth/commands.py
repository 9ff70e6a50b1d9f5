"""The auth plugin's command handlers: wire messages in, replies out, logic in ``accounts``."""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Any, Callable, Optional

from chatcore import protocol
from chatcore.cluster import DatabaseUnavailable
from chatcore.errors import CommandError
from chatcore.users import DEVICE_REVOKED, LOGGED_OUT, PASSWORD_CHANGED
from chatcore_auth import NAME
from chatcore_auth.accounts import Accounts, Outcome
from chatcore_auth.devices import TokenStore, device_problem
from chatcore_auth.metrics import AuthMetrics
from chatcore_auth.names import name_key

if TYPE_CHECKING:
    from chatcore.server import ChatServer
    from chatcore.session import Session

log = logging.getLogger(__name__)

Reply = dict[str, Any]
Handler = Callable[["Session", Reply], Optional[Reply]]
UNAVAILABLE = "The account database cannot be reached right now: try again in a few seconds."
UNAVAILABLE_RETRY = 5  # seconds a client is told to wait when the cluster's database is away
SECRETS = ("password", "token")  # kept from the request other plugins see at login
PENDING_REPLY = "login_reply"
TLS_REQUIRED = ("This server accepts passwords only over an encrypted connection: "
                "reconnect with TLS to log in or register.")


def database_errors(handler: Handler) -> Handler:
    """``handler``, answering ``error`` ``unavailable`` (with ``retry_after``) while the
    cluster's PostgreSQL cannot be reached, instead of failing as a bug would."""

    @functools.wraps(handler)
    def run(session: "Session", message: Reply) -> Optional[Reply]:
        try:
            return handler(session, message)
        except DatabaseUnavailable as error:
            log.warning("auth: %s failed, PostgreSQL unreachable: %s", message.get("command", "?"), error)
            raise CommandError("unavailable", UNAVAILABLE, retry_after=UNAVAILABLE_RETRY) from None

    return run


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

    def __init__(self, server: "ChatServer", accounts: Accounts, tokens: TokenStore,
                 plaintext_policy: str = "loopback", metrics: Optional[AuthMetrics] = None,
                 online_users: Optional[Callable[[], list[str]]] = None) -> None:
        self.server, self.accounts, self.tokens, self.plaintext_policy = server, accounts, tokens, plaintext_policy
        self.metrics = metrics if metrics is not None else AuthMetrics(accounts.hasher)
        self.online_users = online_users or server.sessions.online_users  # in a cluster: every node's

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
        """``login`` {username, password | token, device?} -> ``login_result``; then the session
        is online. With ``password`` and ``device`` the reply carries a new ``token`` for that
        device; with ``token`` (no password hash is computed) it names the ``device``."""
        server, accounts = self.server, self.accounts
        if session.user is not None:
            raise CommandError("already_authenticated",
                               f"this connection is already logged in as {session.user}; log out first")
        username, password, token = message["username"], message.get("password"), message.get("token")
        if (password is None) == (token is None):
            raise CommandError("bad_request", "send either 'password' or 'token'")
        device = message.get("device")
        if device is not None and token is None:
            problem = device_problem(device)
            if problem is not None:
                raise CommandError("bad_request", problem)
        method = "password" if token is None else "token"
        if self._refuses(session):
            self.metrics.failed(method, "tls_required")
            return _result("login", Outcome(False, TLS_REQUIRED), protocol.echo(username))
        if token is not None:
            outcome = accounts.authenticate_token(username, token, session.address[0], self.tokens)
        else:
            assert password is not None
            outcome = accounts.authenticate(username, password, session.address[0])
        if not outcome.ok:
            self.metrics.failed(method, "throttled" if outcome.retry_after else "credentials")
            return _result("login", outcome, protocol.echo(username))
        reply = _result("login", outcome, outcome.username)
        if token is not None:
            session.device = reply["device"] = outcome.device
        elif device is not None:
            reply["token"] = self.tokens.issue(outcome.username, device, session.address[0])
            session.device = reply["device"] = device
        # The reply is sent once the session is bound (a client that has it is online) and
        # before other plugins' chat_authenticated send anything (offline messages, file
        # offers): the plugin's tryfirst hook calls send_login_reply.
        session.state.setdefault(NAME, {})[PENDING_REPLY] = (reply, method)
        server.login(session, outcome.username, {k: v for k, v in message.items() if k not in SECRETS})
        self.send_login_reply(session)  # in case the hook did not run first
        return None

    def send_login_reply(self, session: "Session") -> None:
        """Send the ``login_result`` held for ``session``, if any (once), counting the login
        first (a client holding its ``login_result`` finds it counted); ``admin: true`` in it
        for a server administrator."""
        pending = session.state.get(NAME, {}).pop(PENDING_REPLY, None)
        if pending is not None:
            reply, method = pending
            self.metrics.login(method)
            if session.admin:
                reply["admin"] = True
            session.send(reply)

    def logout(self, session: "Session", message: Reply) -> Reply:
        """``logout`` {everywhere?} -> ``logout_result``; the connection stays open for another
        login. ``everywhere``: every device token of the user stops working and every other
        session of the user ends (``session_ended`` ``logged_out``)."""
        server = self.server
        if message.get("everywhere") and session.user is not None:
            self.tokens.revoke(session.user, why="logged_out")
            server.users.end_sessions(session.user, LOGGED_OUT, keep=session)
        server.logout(session)
        return {"type": "logout_result", "response": "ok"}

    def devices(self, session: "Session", message: Reply) -> Reply:
        """``devices`` -> ``devices`` {devices: [{device, created, last_used, last_address, online,
        current}]}: the user's devices with a valid token, most recently used first."""
        assert session.user is not None
        online = {s.device for s in self.server.sessions.of_user(session.user) if s.device}
        listed = [{"device": d.device, "created": protocol.timestamp(int(d.created * 1000)),
                   "last_used": protocol.timestamp(int(d.last_used * 1000)), "last_address": d.last_address,
                   "online": d.device in online, "current": d.device == session.device}
                  for d in self.tokens.devices(session.user)]
        room = protocol.MAX_JSON - len(protocol.dumps({"type": "devices", "devices": [], "has_more": False}))
        fits = protocol.fitting(listed, room)
        return {"type": "devices", "devices": fits, "has_more": len(fits) < len(listed)}

    def device_revoke(self, session: "Session", message: Reply) -> Reply:
        """``device_revoke`` {device} -> ``device_revoke_result`` {device, revoked}: that device's
        token stops working and its live sessions end (``session_ended`` ``device_revoked``)."""
        assert session.user is not None
        device = message["device"]
        problem = device_problem(device)
        if problem is not None:  # "" would name every session logged in without a device
            raise CommandError("bad_request", problem)
        revoked = self.tokens.revoke(session.user, device) > 0
        ended = self.server.users.end_sessions(session.user, DEVICE_REVOKED, device=device,
                                               keep=session if device != session.device else None)
        if not revoked and not ended:
            raise CommandError("unknown_device", f"you have no device named {protocol.echo(device)!r}")
        return {"type": "device_revoke_result", "device": protocol.echo(device), "revoked": revoked}

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
        offset = message.get("offset", 0)
        if offset < 0:
            raise CommandError("bad_request", "field 'offset' must be 0 or more")
        me = name_key(session.user or "")
        users = [u for u in self.online_users() if name_key(u) != me]
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
        reply = _result("change_password", outcome)
        if outcome.ok:  # whoever else knew the old password is logged out everywhere but here
            self.tokens.revoke(session.user, why="password_changed")
            server.users.end_sessions(session.user, PASSWORD_CHANGED, keep=session)
            if session.device:  # this device goes on: a fresh token replaces the one just revoked
                reply["token"] = self.tokens.issue(session.user, session.device, session.address[0])
                reply["device"] = session.device
        return reply
