"""Connecting, logging in and reconnecting: the part of ``App`` that owns the connection.

A mixin of ``App`` (``app.py``): the Login window's buttons, a remembered token, the connect
thread (``connector.py``) and the trust question, and what a lost connection does (suspend
transfers, show it, reconnect with backoff and log in again on the token, which names the
newest message and change seen). The server field may list a cluster's nodes: connecting tries
them in order, and a reconnect walks them again from the one after the node that was lost, so
the same token and catch-up cursors log in on another node. Only the Tk thread calls these.
"""

from __future__ import annotations

import queue
import ssl
from typing import Any, Callable, Optional

from chatcore_client.api import ChatClient
from chatcore_client.config import ClientSettings, parse_port
from chatcore_client.connection import CONNECT_TIMEOUT, Connection, Disconnected, NotConnected
from chatcore_client.connector import Connector, Failed
from chatcore_client.handlers import Context, Credentials
from chatcore_client.handlers.auth import AuthHandlers
from chatcore_client.handlers.filexfer import FileHandlers
from chatcore_client.keepalive import KeepAlive
from chatcore_client.pinning import PinStore, server_key
from chatcore_client.servers import Address, describe, list_key, parse_servers
from chatcore_client.state import AppState
from chatcore_client.tokens import TokenStore
from chatcore_client.views.trust import TrustDialog


class Connecting:
    """Connect, log in or register, and reconnect after a loss (a mixin of ``App``)."""

    settings: ClientSettings
    events: "queue.Queue[Any]"
    client: Optional[ChatClient]
    servers: tuple[Address, ...]  # the server list (a cluster's nodes), in the order tried
    address: Address  # the server connected to, or the one last tried
    server_fields: tuple[str, str]  # the Login window's Server and port fields as last used
    resume_at: int  # the index in ``servers`` the next reconnect round starts from
    refusal_shown: str  # the last refused node's warning put in the conversation (shown once per outage)
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
        if not host:
            self.login.show_error("Enter the server's address.")
            return
        try:
            servers = self.parse_server_fields(host, port_text)
        except ValueError as exc:
            self.login.show_error(f"Server: {str(exc).rstrip('.')}.")
            return
        self.login.set_busy(True, f"Connecting to {describe(servers)}…")
        self.server_fields = (host, port_text)
        if self.client is not None and self.servers == servers:
            action(username, password)
            return
        if self.client is not None:
            self.client.close()
            self.client = None
        self.servers, self.address = servers, servers[0]
        self._connect(lambda: action(username, password))

    def parse_server_fields(self, host: str, port_text: str) -> tuple[Address, ...]:
        """The Server field (one server or a comma-separated list) with the port field as the port
        of entries that name none; ValueError with a readable message."""
        default_port = parse_port(port_text) if port_text.strip() else None
        return parse_servers(host, default_port, self.settings.max_servers)

    @property
    def servers_key(self) -> str:
        """The pin and remembered-login key of the server list (``host:port`` for one server)."""
        return list_key(self.servers)

    def _log_in_remembered(self, credentials: Credentials) -> None:
        self.login.set_busy(True, f"Logging in as {credentials.username}…")
        self._connect(lambda: self.auth.resume(credentials))

    def _keep_token(self, credentials: Optional[Credentials]) -> None:
        """Remember the token (one for the whole server list) when "Remember me" is ticked; forget
        it when it stops working."""
        if credentials is not None and self.login.remember.get():
            self.tokens.save(self.servers_key, credentials)
        else:
            self.tokens.forget(self.servers_key)

    def _connect(self, then: Callable[[], None], start: int = 0) -> None:
        """Open a connection in a worker thread (TLS handshakes and the trust question may take time),
        to the first server of the list from ``start`` on that answers."""
        timeout = CONNECT_TIMEOUT if len(self.servers) == 1 else self.settings.attempt_timeout
        self.connector.open(self.servers, lambda conn: self._connected(conn, then), self._connect_failed,
                            start=start, trying=self._trying, pins=self.pins, pin_key=self.servers_key,
                            ask=self._ask_trust, tls=self.settings.tls, ca_context=self.ca_context,
                            timeout=timeout)

    def _trying(self, index: int) -> None:
        """The connect thread moves on to ``servers[index]``: say so where the user is looking."""
        if self.closing or index >= len(self.servers):
            return
        self.address = self.servers[index]
        if len(self.servers) == 1:
            return
        where = f"{server_key(*self.address)} (server {index + 1} of {len(self.servers)})"
        if self.main is not None and self.connector.reconnecting:
            self.main.set_status(f"Reconnecting to {where}…", "warning")
        elif self.main is None:
            self.login.show_info(f"Connecting to {where}…")

    def _ask_trust(self, host: str, port: int, fingerprint: str) -> bool:
        """Called on the connect thread: show the dialog on the Tk thread and wait for the answer."""
        def show(reply: Callable[[bool], None]) -> None:
            def answered(trusted: bool) -> None:
                self.trust_dialog = None
                reply(trusted)
            parent = self.main if self.main is not None else self.login
            cluster = describe(self.servers) if len(self.servers) > 1 else ""  # one answer for every node
            self.trust_dialog = TrustDialog(parent, server_key(host, port), fingerprint, answered, cluster)

        return self.connector.ask(show)

    def _connected(self, connection: Connection, then: Callable[[], None]) -> None:
        if self.closing:
            connection.close()
            return
        self.address = (connection.host, connection.port)
        self.client = ChatClient(connection, self.events)
        self.client.send({"command": "hello", "client": "chatcore-client (Tk)", "protocol": 2,
                          "presence": "batched"})
        if connection.warning:
            self.login.show_warning(connection.warning)
        then()

    def _connect_failed(self, failure: Failed) -> None:
        if self.connector.reconnecting and self.main is not None:
            self.resume_at = failure.last_tried + 1  # the next round starts after the server that failed last
            if failure.refused and len(self.servers) > 1 and failure.reason != self.refusal_shown:
                self.refusal_shown = failure.reason  # the next round may reach another node: the warning stays
                self.ctx.notice(self.state.current, failure.reason)
            self._schedule_reconnect(failure.reason)
            return
        self.login.set_busy(False)
        self.login.show_error(failure.reason)

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
        lost = (event.connection.host, event.connection.port)
        self.resume_at = self.servers.index(lost) + 1 if lost in self.servers else 0
        self._schedule_reconnect(event.reason)

    def _schedule_reconnect(self, reason: str) -> None:
        delay = self.connector.retry_later(self._reconnect)
        if self.main is not None:
            self.main.set_status(f"Disconnected ({reason}) — reconnecting in {delay:g} s…", "error")

    def _reconnect(self) -> None:
        if self.closing or self.client is not None or self.ctx.credentials is None:
            return
        if self.main is not None:
            self.main.set_status(f"Reconnecting to {describe(self.servers)}…", "warning")
        credentials = self.ctx.credentials
        self._connect(lambda: self.auth.resume(credentials), start=self.resume_at % len(self.servers))

    def _send(self, message: dict[str, Any]) -> None:
        """Send on the current connection (any thread); NotConnected while there is none."""
        client = self.client
        if client is None:
            raise NotConnected("Not connected to the server.")
        client.send(message)
