"""Handlers for the ``auth`` plugin's events: login, registration, presence."""

from __future__ import annotations

from typing import Any

from chatcore_client.handlers import Context, Credentials, Dispatcher
from chatcore_client.state import ROOM

NOTICES_PER_BATCH = 5  # more presence changes at once than this get one summary notice



class AuthHandlers:
    """register/login results, the online list and join/leave notices."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def register(self, dispatcher: Dispatcher) -> None:
        """Claim this module's event types."""
        for event, handler in {
            "login_result": self.login_result, "register_result": self.register_result,
            "error:login": self.credentials_error, "error:register": self.credentials_error,
            "get_users": self.users, "peer_joined": self.joined, "peer_left": self.left,
            "presence": self.presence, "devices": self.devices_listed,
            "device_revoke_result": self.device_revoked, "error:device_revoke": self.device_error,
        }.items():
            dispatcher.register(event, handler)

    def login(self, username: str, password: str) -> None:
        """Send ``login`` with the password (the app calls this once connected), naming this
        client's device so the server answers a token to log in with from then on."""
        self.ctx.credentials = Credentials(username, password=password)
        request = {"command": "login", "username": username, "password": password}
        if self.ctx.device:  # (sent before hello's answer is in; a server without tokens ignores it)
            request["device"] = self.ctx.device
        self.ctx.send(request)

    def resume(self, credentials: Credentials) -> None:
        """Log in again after a reconnect (or at start with a remembered token): on the token,
        naming the newest message seen so the server sends only what was missed, and the newest
        change seen (once one is known) so it replays the edits, deletions and reactions made
        meanwhile to what is shown; until ``caught_up`` the open conversations are not reloaded."""
        if credentials.token is None:
            assert credentials.password is not None
            self.login(credentials.username, credentials.password)
            return
        self.ctx.credentials = credentials
        request: dict[str, Any] = {"command": "login", "username": credentials.username, "token": credentials.token}
        state = self.ctx.state
        if state.newest_id:
            request["since"] = state.newest_id
            if state.newest_change_id is not None:
                request["changes_since"] = state.newest_change_id
                state.replaying = True
        if state.newest_room_change_id is not None:
            request["room_changes_since"] = state.newest_room_change_id
            state.room_replaying = True
        self.ctx.send(request)

    def register_account(self, username: str, password: str) -> None:
        """Send ``register``; a success logs in with the same credentials."""
        self.ctx.credentials = Credentials(username, password=password)
        self.ctx.send({"command": "register", "username": username, "password": password})

    def register_result(self, message: dict[str, Any]) -> None:
        credentials = self.ctx.credentials
        if message.get("response") == "ok" and credentials is not None and credentials.password is not None:
            self.login(credentials.username, credentials.password)
        else:
            self.ctx.view.login_failed(str(message.get("reason") or "Registration failed."))

    def login_result(self, message: dict[str, Any]) -> None:
        """On success: become that user, ask who is online, let other handlers restore their state."""
        if message.get("response") != "ok":
            if self.ctx.credentials is not None and self.ctx.credentials.token is not None:
                self.ctx.credentials = None  # a refused token is no good: forget it, ask for the password
                self.ctx.keep_token(None)
            self.ctx.view.login_failed(str(message.get("reason") or "Login failed."))
            return
        state = self.ctx.state
        credentials = self.ctx.credentials
        state.user = str(message.get("username") or (credentials.username if credentials else "?"))
        state.admin = message.get("admin") is True
        if isinstance(message.get("token"), str):  # from now on the token, never the password, logs in again
            self.ctx.credentials = Credentials(state.user, token=message["token"], device=str(message.get("device", "")))
            self.ctx.keep_token(self.ctx.credentials)
        self.ctx.view.logged_in(state.user)
        if state.server.offers("get_users"):
            self.ctx.send({"command": "get_users"})
        for hook in self.ctx.on_login:
            hook()

    def list_devices(self) -> None:
        """Ask for the user's devices (answered by ``devices``)."""
        self.ctx.send({"command": "devices"})

    def revoke_device(self, device: str) -> None:
        """Sign a device out; the list is asked for again once the server confirms."""
        self.ctx.send({"command": "device_revoke", "device": device})

    def devices_listed(self, message: dict[str, Any]) -> None:
        devices = [d for d in message.get("devices", []) if isinstance(d, dict)]
        self.ctx.view.devices_listed(devices)

    def device_revoked(self, message: dict[str, Any]) -> None:
        self.list_devices()

    def device_error(self, message: dict[str, Any]) -> None:
        self.ctx.view.show_error(f"Could not sign the device out: {message.get('reason')}")
        self.list_devices()

    def credentials_error(self, message: dict[str, Any]) -> None:
        """``error`` for login/register: e.g. a server without the auth plugin."""
        if message.get("code") == "unknown_command":
            self.ctx.view.login_failed("This server has no accounts (its auth plugin is disabled).")
        else:
            self.ctx.view.login_failed(str(message.get("reason") or message.get("code")))

    def users(self, message: dict[str, Any]) -> None:
        """``get_users``: mark who is online (asking for more pages when the list is long)."""
        state = self.ctx.state
        for name in message.get("data", []):
            if isinstance(name, str) and name != state.user:
                state.conversation(name).online = True
        if message.get("has_more") and "next_offset" in message:
            self.ctx.send({"command": "get_users", "offset": message["next_offset"]})
        self.ctx.view.conversations_changed()

    def joined(self, message: dict[str, Any]) -> None:
        peer = str(message.get("peer", ""))
        if not peer or peer == self.ctx.state.user:
            return
        self.ctx.state.conversation(peer).online = True
        self.ctx.notice(ROOM, f"{peer} joined")
        self.ctx.view.conversations_changed()

    def left(self, message: dict[str, Any]) -> None:
        peer = str(message.get("peer", ""))
        if not peer:
            return
        self.ctx.state.conversation(peer).online = False
        self.ctx.notice(ROOM, f"{peer} left")
        self.ctx.view.conversations_changed()

    def presence(self, message: dict[str, Any]) -> None:
        """``presence`` {joined, left} (batched presence, asked for in hello): a notice per
        name for a few changes, one summary line for a crowd."""
        state = self.ctx.state
        joined = [n for n in message.get("joined", []) if isinstance(n, str) and n and n != state.user]
        left = [n for n in message.get("left", []) if isinstance(n, str) and n]
        for name in joined:
            state.conversation(name).online = True
        for name in left:
            state.conversation(name).online = False
        if len(joined) + len(left) <= NOTICES_PER_BATCH:
            for name in joined:
                self.ctx.notice(ROOM, f"{name} joined")
            for name in left:
                self.ctx.notice(ROOM, f"{name} left")
        else:
            self.ctx.notice(ROOM, f"{len(joined)} joined, {len(left)} left")
        self.ctx.view.conversations_changed()
