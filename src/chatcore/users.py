"""Ending a user's sessions on purpose, and removing an account from every plugin.

Removal and password changes must take effect on live sessions at once: each session of the
user gets a final ``session_ended`` {``code``, ``reason``} event and is closed; removal then
asks every plugin, through ``chat_user_removed``, to forget what it keeps for the user, so
a stranger who later registers the same name inherits nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Optional

from chatcore import protocol
from chatcore.cluster.relay import publish_end_sessions
from chatcore.errors import CommandError

if TYPE_CHECKING:
    from chatcore.server import ChatServer
    from chatcore.session import Session

log = logging.getLogger(__name__)

ACCOUNT_REMOVED = "account_removed"
PASSWORD_CHANGED = "password_changed"
DEVICE_REVOKED = "device_revoked"
LOGGED_OUT = "logged_out"
KICKED = "kicked"
REASONS = {
    ACCOUNT_REMOVED: "Your account was removed from this server.",
    PASSWORD_CHANGED: "Your password was changed: log in again with the new password.",
    DEVICE_REVOKED: "This device was signed out: log in again with your password.",
    LOGGED_OUT: "You logged out everywhere: log in again with your password.",
    KICKED: "An administrator disconnected you.",
}
REMOVAL_GUARD = 10.0  # seconds after a removal during which plugins refuse to store anything for the name
UNBIND_WAIT = 5.0  # seconds to wait for ended sessions to finish logging out
FINAL_EVENT_WAIT = 1.0  # seconds, in all, the ended sessions' queues get to take the final event out


class UserControl:
    """The server's means to end sessions of a user and to remove a user everywhere."""

    def __init__(self, server: "ChatServer") -> None:
        self._server = server
        self._lock = threading.Lock()
        self._removing: set[str] = set()  # names whose removal runs: their logins are refused
        self._removed_at: dict[str, float] = {}  # name -> monotonic time of its removal

    def end_sessions(self, username: str, code: str, reason: str = "", keep: Optional["Session"] = None,
                     device: Optional[str] = None, wait: float = UNBIND_WAIT, cluster_wide: bool = True) -> int:
        """Send ``session_ended`` to every session of ``username`` but ``keep`` (only those logged
        in as ``device``, if one is named), close them, and wait (up to ``wait`` s) until they have
        logged out; returns how many were ended here. In cluster mode the other nodes are told
        to do the same with theirs (``cluster_wide``; they do not answer with a count)."""
        if cluster_wide:
            publish_end_sessions(self._server, username, code, reason, device)
        sessions = [s for s in self._server.sessions.of_user(username)
                    if s is not keep and (not device or s.device == device)]
        if not sessions:
            return 0
        frame = protocol.encode({"type": "session_ended", "code": code, "reason": reason or REASONS.get(code, code)})
        for session in sessions:
            session.send_frame(frame)
        linger = time.monotonic() + FINAL_EVENT_WAIT  # closing drops what is queued: let the event out first
        for session in sessions:
            session.wait_drained(0, max(0.0, linger - time.monotonic()))
            session.close(f"session ended: {code}")
        if not self._server.sessions.wait_unbound(sessions, wait):
            log.warning("sessions of %s did not log out within %g s of being ended", username, wait)
        log.info("ended %d session(s) of %s: %s", len(sessions), username, code)
        return len(sessions)

    def check_login(self, username: str) -> None:
        """Refuse a login for a name whose removal is under way (called by the core's ``login``)."""
        with self._lock:
            if username.casefold() in self._removing:
                raise CommandError(ACCOUNT_REMOVED, "this account is being removed")

    def remove(self, username: str) -> list[str]:
        """End the user's sessions, then have every plugin forget the user (``chat_user_removed``;
        the accounts plugin deletes the account itself). Runs the hook even when no session is
        open, and is safe to repeat: each plugin's part must be idempotent. Returns the plugins
        that failed (their data of the user may remain: run the removal again)."""
        key = username.casefold()
        with self._lock:
            self._removing.add(key)
        try:
            self.end_sessions(username, ACCOUNT_REMOVED)
            with self._lock:
                self._removed_at[key] = time.monotonic()
            # disabled plugins too: their storage still holds the user's data
            failed = self._server.plugins.notify("chat_user_removed", disabled_too=True, server=self._server,
                                                 username=username)
        finally:
            with self._lock:
                self._removing.discard(key)
        if failed:
            log.error("removing user %s failed in plugin(s) %s: their data of it may remain", username,
                      ", ".join(failed))
        else:
            log.info("removed user %s and every plugin's data of it", username)
        return failed

    def registered(self, username: str) -> None:
        """A new account took the name: it is no longer "just removed" (the accounts plugin calls
        this; a request resolved before the removal finished long before a registration could)."""
        with self._lock:
            self._removed_at.pop(username.casefold(), None)

    def remove_account(self, username: str) -> dict[str, Any]:
        """``remove`` for the command line: {ok, username} or {ok: False, error}. A name with no
        account still gets the plugins' part, which finishes a removal that failed half-way
        (the account already gone, some plugin's data not)."""
        name = self._server.lookup_user(username)
        if name is None:
            if 0 < len(username) <= 64:
                self.remove(username)
            return {"ok": False, "error": f"no user {username!r}"}
        failed = self.remove(name)
        if failed:
            return {"ok": False, "username": name, "error": f"plugin(s) {', '.join(failed)} failed to forget "
                    f"{name}; the server log says why; run the removal again"}
        return {"ok": True, "username": name}

    def removed_recently(self, username: str) -> bool:
        """True for a name removed in the last REMOVAL_GUARD seconds. Plugins check it where they
        store something for a user, so a request that resolved the name just before its
        removal cannot leave data behind for the name's next owner."""
        if not self._removed_at:  # nothing removed lately (the usual case): no lock, no casefold
            return False
        key = username.casefold()
        with self._lock:
            removed = self._removed_at.get(key)
            if removed is None:
                return False
            if time.monotonic() - removed < REMOVAL_GUARD:
                return True
            del self._removed_at[key]
            return False


def admin_handlers(server: "ChatServer") -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
    """The admin-socket commands that change users (``chatcore user remove|passwd`` send them)."""

    def remove_user(request: dict[str, Any]) -> dict[str, Any]:
        return server.users.remove_account(str(request.get("username", "")))

    def end_sessions(request: dict[str, Any]) -> dict[str, Any]:
        code = request.get("code")
        if code not in REASONS:
            return {"ok": False, "error": f"unknown code {code!r}; known: {sorted(REASONS)}"}
        device = request.get("device")
        ended = server.users.end_sessions(str(request.get("username", "")), code,
                                          device=device if isinstance(device, str) else None)
        return {"ok": True, "ended": ended}

    return {"remove_user": remove_user, "end_sessions": end_sessions}
