"""The Tk application: one queue drained by an ``after()`` loop, and the wiring of windows,
handlers and the connector (connecting, logging in and reconnecting: ``connecting.py``).

Only this thread touches Tk. The connection's reader thread, the connect thread and file
transfer threads put events or callables on ``self.events``; ``pump`` runs them here.
"""

from __future__ import annotations

import logging
import queue
import socket
import ssl
import tkinter as tk
from tkinter import filedialog
from typing import Any, Callable, Optional

from chatcore_client.api import ChatClient, ServerInfo
from chatcore_client.config import ClientSettings, load_settings
from chatcore_client.connecting import Connecting
from chatcore_client.connection import Disconnected, NotConnected, Received
from chatcore_client.connector import Connector, tk_timer
from chatcore_client.handlers import Context, Dispatcher
from chatcore_client.handlers.admin import AdminHandlers
from chatcore_client.handlers.auth import AuthHandlers
from chatcore_client.handlers.chat import ChatHandlers
from chatcore_client.handlers.core import CoreHandlers
from chatcore_client.handlers.filexfer import FileHandlers
from chatcore_client.handlers.rooms import RoomHandlers
from chatcore_client.keepalive import KeepAlive
from chatcore_client.pinning import PinStore, server_key
from chatcore_client.state import AppState, Line
from chatcore_client.tokens import TokenStore
from chatcore_client.transfers import Transfers
from chatcore_client.views import theme
from chatcore_client.views.admin import AdminViews, AdminWindow
from chatcore_client.views.devices import DevicesWindow, DeviceViews
from chatcore_client.views.features import FeatureViews
from chatcore_client.views.files import FileOfferDialog, TransferViews, TransferWindow
from chatcore_client.views.login import LoginWindow
from chatcore_client.views.main import MainCallbacks, MainWindow
from chatcore_client.views.rooms import RoomViews
from chatcore_client.views.trust import TrustDialog

log = logging.getLogger(__name__)

PUMP_MS = 20  # how often the queue is drained
BATCH = 200  # events handled per tick, so a flood cannot freeze the window
ChooseOpen = Callable[[tk.Misc], Optional[str]]
ChooseSave = Callable[[tk.Misc, str], Optional[str]]


def device_name() -> str:
    """How this client names itself to the server (the Devices list shows it)."""
    return f"desktop on {socket.gethostname() or 'this computer'}"[:64]


def _ask_open(parent: tk.Misc) -> Optional[str]:
    return filedialog.askopenfilename(parent=parent, title="Send a file") or None


def _ask_save(parent: tk.Misc, name: str) -> Optional[str]:
    return filedialog.asksaveasfilename(parent=parent, title="Save the file as", initialfile=name) or None


class App(Connecting, TransferViews, DeviceViews, AdminViews, RoomViews, FeatureViews):
    """The desktop client. ``root`` defaults to a new, hidden Tk root; call ``run`` or pump it yourself."""

    def __init__(self, settings: Optional[ClientSettings] = None, *, root: Optional[tk.Tk] = None,
                 pins: Optional[PinStore] = None, ca_context: Optional[ssl.SSLContext] = None,
                 choose_open: ChooseOpen = _ask_open, choose_save: ChooseSave = _ask_save,
                 tokens: Optional[TokenStore] = None) -> None:
        self.settings = settings or load_settings()
        self.root = root or tk.Tk()
        self.root.withdraw()  # no stray empty window: every visible window is a Toplevel
        self.root.report_callback_exception = self._callback_failed  # a failing widget callback is shown, not lost
        theme.apply(self.root)
        self.pins = pins or PinStore(self.settings.known_servers)
        self.ca_context = ca_context
        self.choose_open, self.choose_save = choose_open, choose_save
        self.events: "queue.Queue[Any]" = queue.Queue()
        self.client: Optional[ChatClient] = None
        self.server_fields = (self.settings.host, str(self.settings.port))
        try:
            self.servers = self.parse_server_fields(*self.server_fields)
        except ValueError as exc:
            self.servers, startup_error = (), f"SERVER_IP: {str(exc).rstrip('.')}."
        else:
            startup_error = ""
        self.address = self.servers[0] if self.servers else (self.settings.host, self.settings.port)
        self.resume_at, self.refusal_shown = 0, ""
        self.state = AppState()
        self.tokens = tokens or TokenStore.for_settings(self.settings.known_servers, self.settings.keyring)
        self.ctx = Context(self.state, self, self._send, Transfers(self._send), self.post,
                           device=device_name(), keep_token=self._keep_token)
        self.dispatcher = Dispatcher(self)
        self.core, self.auth = CoreHandlers(self.ctx), AuthHandlers(self.ctx)
        self.chat, self.files, self.admin = ChatHandlers(self.ctx), FileHandlers(self.ctx), AdminHandlers(self.ctx)
        self.rooms = RoomHandlers(self.ctx)
        self.chat.rooms = self.rooms  # "#room" conversations are the rooms handlers'
        for handlers in (self.core, self.auth, self.chat, self.files, self.admin, self.rooms):
            handlers.register(self.dispatcher)
        self.rooms.mentioned, self.rooms.focused = self._mentioned, self._focused
        self.rooms.directory_listed, self.rooms.members_listed = self._directory_listed, self._members_listed
        self.rooms.changed = self._room_changed
        self._setup_features()  # edit, delete, reactions, typing, search, pins (views/features.py)
        self.room_dialogs: dict[str, Any] = {}
        self.main: Optional[MainWindow] = None
        self.transfer_windows: dict[str, TransferWindow] = {}
        self.offer_dialogs: dict[str, FileOfferDialog] = {}
        self.trust_dialog: Optional[TrustDialog] = None
        self.devices_window: Optional[DevicesWindow] = None
        self.admin_window: Optional[AdminWindow] = None
        self.closing = False
        self.connector = Connector(self.post, tk_timer(self.root), lambda: self.closing)
        self.keepalive = KeepAlive(self.root, self._send)
        self.dispatcher.register("pong", self.keepalive.pong)
        self.login = LoginWindow(self.root, self.settings.host, self.settings.port, self._login_clicked,
                                 self._register_clicked, self.quit)
        self._pump_id: Optional[str] = self.root.after(PUMP_MS, self.pump)
        if startup_error:
            self.login.show_error(startup_error)
        remembered = self.tokens.get(self.servers_key) if self.servers else None
        if remembered is not None:  # "Remember me" last time: log in on the token, no password asked
            self.login.username.set(remembered.username)
            self.login.remember.set(True)
            self.post(lambda: self._log_in_remembered(remembered))

    # -- the queue pump (Tk thread) --------------------------------------------------------------

    def _callback_failed(self, kind: type[BaseException], error: BaseException, trace: Any) -> None:
        """Tk's hook for an exception in a widget callback (a button, a key binding): log it with
        its traceback and show it, instead of Tk's default of printing to a console nobody sees."""
        log.error("a window callback failed", exc_info=(kind, error, trace))
        self.show_error(f"Internal error: {error}")

    def post(self, action: Callable[[], None]) -> None:
        """Run ``action`` on the Tk thread soon; callable from any thread."""
        self.events.put(action)

    def pump(self) -> None:
        """Drain a batch of events; every failure is logged and shown, and the loop goes on."""
        handled = 0
        while handled < BATCH:
            try:
                item = self.events.get_nowait()
            except queue.Empty:
                break
            handled += 1
            try:
                self._handle(item)
            except Exception as exc:
                log.exception("handling %r failed", item)
                self.show_error(f"Internal error: {exc}")
        if not self.closing:
            self._pump_id = self.root.after(1 if handled == BATCH else PUMP_MS, self.pump)

    def _handle(self, item: Any) -> None:
        current = self.client.connection if self.client is not None else None
        if isinstance(item, Received):
            if item.connection is current:
                self.dispatcher.dispatch(item.message)
        elif isinstance(item, Disconnected):
            if item.connection is current:
                self._disconnected(item)
        elif callable(item):
            item()

    # -- the View protocol (called by handlers on the Tk thread) -----------------------------------

    def server_info(self, info: ServerInfo) -> None:
        self.keepalive.start(float(info.raw.get("idle_timeout") or 0))
        if self.main is not None:
            self.main.set_features(self.chat.available, self.files.available, self.rooms.available)

    def logged_in(self, user: str) -> None:
        self.connector.succeeded()
        self.refusal_shown = ""
        if self.main is None:
            self.main = MainWindow(self.root, user, MainCallbacks(
                select=self.chat.open, send=self._send_text, send_file=self._send_file_clicked,
                scrolled_to_top=self._scrolled_to_top, close=self.quit, devices=self._devices_clicked,
                admin=self._admin_clicked, new_room=self._new_room_clicked, browse=self._browse_clicked,
                members=self._members_clicked, topic=self._topic_clicked, leave=self._leave_clicked,
                delete_room=self._delete_room_clicked,
                focused=self._window_focused, **self._feature_callbacks()))
            self.main.set_features(self.chat.available, self.files.available, self.rooms.available)
            self.login.withdraw()
        self.admin_changed(self.admin.available)
        self._show_connection_status()
        self.conversations_changed()

    def _show_connection_status(self) -> None:
        assert self.main is not None
        client = self.client
        if client is None:
            return
        where = server_key(client.connection.host, client.connection.port)
        if len(self.servers) > 1 and self.address in self.servers:
            where = f"{where} (server {self.servers.index(self.address) + 1} of {len(self.servers)})"
        if client.tls:
            how = "certificate verified by a CA" if client.connection.ca_verified else "pinned certificate"
            self.main.set_status(f"Connected to {where} · encrypted (TLS, {how})", "ok")
        else:
            self.main.set_status(f"Connected to {where} · NOT ENCRYPTED: {client.connection.warning}", "warning")
        missing = [name for name in ("chat", "filexfer") if name not in self.state.server.plugins]
        if missing:
            self.main.set_status(f"{self.main.status.cget('text')} · server without: {', '.join(missing)}",
                                 "ok" if client.tls else "warning")

    def login_failed(self, reason: str) -> None:
        if self.main is not None and self.connector.reconnecting:
            self.main.set_status(f"Could not log in again: {reason}", "error")
            self.connector.gave_up()
            self.files.abort(f"Could not log in again: {reason}")
            self.login.deiconify()
        self.login.set_busy(False)
        self.login.show_error(reason)

    def session_ended(self, reason: str) -> None:
        """The server ended the session on purpose: back to the Login window with the reason, server
        and username filled in, the password empty. This side closes the connection, so its end is
        not a loss to reconnect from (and the handler forgot the credentials)."""
        user = self.state.user or self.login.username.get()
        self.connector.gave_up()
        self.keepalive.stop()
        if self.client is not None:
            self.client.close()
            self.client = None
        self.files.abort(reason)
        for window in [*self.transfer_windows.values(), *self.offer_dialogs.values(), *self.room_dialogs.values(),
                       self.devices_window, self.admin_window, self.main]:
            if window is not None and window.winfo_exists():
                window.destroy()
        self.transfer_windows.clear()
        self.offer_dialogs.clear()
        self.room_dialogs.clear()
        self.main = None
        self.state = self.ctx.state = AppState()  # the next login may be another user's
        host, port = self.server_fields if len(self.servers) > 1 else (self.address[0], str(self.address[1]))
        for variable, value in ((self.login.host, host), (self.login.port, port), (self.login.username, user),
                                (self.login.password, "")):
            variable.set(value)
        self.login.set_busy(False)
        self.login.show_error(reason)
        self.login.deiconify()
        self.login.password_entry.focus_set()

    def conversations_changed(self) -> None:
        if self.main is not None:
            self.main.show_conversations(self.state.ordered(), self.state.current)
            self._current_changed()

    def lines_added(self, key: str, lines: list[Line], at_start: bool) -> None:
        if self.main is not None:
            self.main.pane(key).add(lines, at_start)
            self._continue_jump(key)

    def show_error(self, text: str) -> None:
        log.warning("%s", text)
        if self.main is not None:
            self.main.set_status(text, "error")
        else:
            self.login.show_error(text)

    # -- user actions from the main window ----------------------------------------------------------

    def _send_text(self, text: str) -> None:
        try:
            self.chat.send_text(text)
        except NotConnected as exc:
            self.ctx.notice(self.state.current, f"Not sent: {exc}")

    def _scrolled_to_top(self, key: str) -> None:
        if key == self.state.current and self.client is not None:
            self.chat.load_older(key)

    # -- lifetime -------------------------------------------------------------------------------------

    def quit(self) -> None:
        """Close the connection and every window."""
        if self.closing:
            return
        self.closing = True
        if self.trust_dialog is not None:
            self.trust_dialog.answer(False)
        if self._pump_id is not None:
            self.root.after_cancel(self._pump_id)
        self.keepalive.stop()
        if self.client is not None:
            self.client.close()
            self.client = None
        self.ctx.transfers.abort_all("The client closed.")
        self.login.release()
        self.root.destroy()

    def run(self) -> None:
        """The Tk main loop, until the user closes the window."""
        self.root.mainloop()
