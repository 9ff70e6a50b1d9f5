"""Connecting, logging in and reconnecting: the part of ``App`` that owns the connection.

A mixin of ``App`` (``app.py``): the Login window's buttons, a remembered token, the connect
thread (``connector.py``) and the trust question, and what a lost connection does (suspend
transfers, show it, reconnect with backoff and log in again on the token, which names the
newest message and change seen). Only the Tk thread calls these.
"""

from __future__ import annotations

import queue
import ssl
from typing import Any, Callable, Optional

from chatcore_client.api import ChatClient
from chatcore_client.config import ClientSettings, parse_port
from chatcore_client.connection import Connection, Disconnected, NotConnected
from chatcore_client.connector import Connector
from chatcore_client.handlers import Context, Credentials
from chatcore_client.handlers.auth import AuthHandlers
from chatcore_client.handlers.filexfer import FileHandlers
from chatcore_client.keepalive import KeepAlive
from chatcore_client.pinning import PinStore, server_key
from chatcore_client.state import AppState
from chatcore_client.tokens import TokenStore
from chatcore_client.views.trust import TrustDialog


class Connecting:
    """Connect, log in or register, and reconnect after a loss (a mixin of ``App``)."""

    settings: ClientSettings
    events: "queue.Queue[Any]"
    client: Optional[ChatClient]
    address: tuple[str, int]
    state: AppState
    tokens: TokenStore
    pins: PinStore
    ca_context: Optional[ssl.SSLContext]
    ctx: Context
    auth: AuthHandlers
    files: FileHandlers
    connector: Connector
    keepalive: KeepAlive
    login: Any
    main: Any
    trust_dialog: Optional[TrustDialog]
    closing: bool

    def conversations_changed(self) -> None: ...

    # -- connecting --------------------------------------------------------------------------------

    def _login_clicked(self, host: str, port: str, username: str, password: str) -> None:
        self._start(host, port, username, password, self.auth.login)

    def _register_clicked(self, host: str, port: str, username: str, password: str) -> None:
        self._start(host, port, username, password, self.auth.register_account)

    def _start(self, host: str, port_text: str, username: str, password: str,
               action: Callable[[str, str], None]) -> None:
        """Validate the form, then connect (or reuse the connection) and send login/register."""
        if not username or not password:
            self.login.show_error("Enter a username and a password.")
            return
        try:
            port = parse_port(port_text)
        except ValueError as exc:
            self.login.show_error(f"Server: {exc}.")
            return
        if not host:
            self.login.show_error("Enter the server's address.")
            return
        self.login.set_busy(True, f"Connecting to {server_key(host, port)}…")
        if self.client is not None and self.address == (host, port):
            action(username, password)
            return
        if self.client is not None:
            self.client.close()
            self.client = None
        self.address = (host, port)
        self._connect(lambda: action(username, password))

    def _log_in_remembered(self, credentials: Credentials) -> None:
        self.login.set_busy(True, f"Logging in as {credentials.username}…")
        self._connect(lambda: self.auth.resume(credentials))

    def _keep_token(self, credentials: Optional[Credentials]) -> None:
        """Remember the server's token when "Remember me" is ticked; forget it when it stops working."""
        host, port = self.address
        if credentials is not None and self.login.remember.get():
            self.tokens.save(host, port, credentials)
        else:
            self.tokens.forget(host, port)

    def _connect(self, then: Callable[[], None]) -> None:
        """Open a connection in a worker thread (TLS handshakes and the trust question may take time)."""
        host, port = self.address
        self.connector.open(host, port, lambda conn: self._connected(conn, then), self._connect_failed,
                            pins=self.pins, ask=self._ask_trust, tls=self.settings.tls, ca_context=self.ca_context)

    def _ask_trust(self, host: str, port: int, fingerprint: str) -> bool:
        """Called on the connect thread: show the dialog on the Tk thread and wait for the answer."""
        def show(reply: Callable[[bool], None]) -> None:
            def answered(trusted: bool) -> None:
                self.trust_dialog = None
                reply(trusted)
            parent = self.main if self.main is not None else self.login
            self.trust_dialog = TrustDialog(parent, server_key(host, port), fingerprint, answered)

        return self.connector.ask(show)

    def _connected(self, connection: Connection, then: Callable[[], None]) -> None:
        if self.closing:
            connection.close()
            return
        self.client = ChatClient(connection, self.events)
        self.client.send({"command": "hello", "client": "chatcore-client (Tk)", "protocol": 2,
                          "presence": "batched"})
        if connection.warning:
            self.login.show_warning(connection.warning)
        then()

    def _connect_failed(self, reason: str) -> None:
        if self.connector.reconnecting and self.main is not None:
            self._schedule_reconnect(reason)
            return
        self.login.set_busy(False)
        self.login.show_error(reason)

    # -- disconnects and reconnects ----------------------------------------------------------------

    def _disconnected(self, event: Disconnected) -> None:
        self.client = None
        self.keepalive.stop()
        self.state.reset_session()
        if self.closing or event.requested or self.main is None:
            self.files.abort(event.reason)
        else:
            self.files.suspend()  # resumed by the next login (FileHandlers.resume)
        if self.closing or event.requested:
            return
        if self.main is None:
            self.login.set_busy(False)
            self.login.show_error(event.reason)
            return
        self.ctx.notice(self.state.current, f"Disconnected: {event.reason}")
        self.conversations_changed()
        self._schedule_reconnect(event.reason)

    def _schedule_reconnect(self, reason: str) -> None:
        delay = self.connector.retry_later(self._reconnect)
        if self.main is not None:
            self.main.set_status(f"Disconnected ({reason}) — reconnecting in {delay:g} s…", "error")

    def _reconnect(self) -> None:
        if self.closing or self.client is not None or self.ctx.credentials is None:
            return
        if self.main is not None:
            self.main.set_status(f"Reconnecting to {server_key(*self.address)}…", "warning")
        credentials = self.ctx.credentials
        self._connect(lambda: self.auth.resume(credentials))

    def _send(self, message: dict[str, Any]) -> None:
        """Send on the current connection (any thread); NotConnected while there is none."""
        client = self.client
        if client is None:
            raise NotConnected("Not connected to the server.")
        client.send(message)
