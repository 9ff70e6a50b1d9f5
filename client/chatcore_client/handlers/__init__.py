"""Event handlers, one module per server plugin, and the dispatcher that calls them safely.

Each handler module registers the event types it handles; ``error`` events are routed by
the command they answer (``error:chat``). A handler that raises is logged and shown; the
receive loop goes on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol

from chatcore_client.api import ServerInfo
from chatcore_client.credentials import Credentials
from chatcore_client.progress import Progress
from chatcore_client.state import AppState, Line
from chatcore_client.transfers import Transfers

log = logging.getLogger(__name__)
__all__ = ["Context", "Credentials", "Dispatcher", "View"]
Handler = Callable[[dict[str, Any]], None]


class View(Protocol):
    """What handlers may ask of the user interface (the GUI, or a fake in tests)."""

    def server_info(self, info: ServerInfo) -> None: ...

    def logged_in(self, user: str) -> None: ...

    def login_failed(self, reason: str) -> None: ...

    def session_ended(self, reason: str) -> None: ...

    def devices_listed(self, devices: list[dict[str, Any]]) -> None: ...

    def conversations_changed(self) -> None: ...

    def select(self, key: str) -> None: ...

    def lines_added(self, key: str, lines: list[Line], at_start: bool) -> None: ...

    def show_error(self, text: str) -> None: ...

    def line_changed(self, key: str, line: Line) -> None: ...

    def typing_changed(self, key: str) -> None: ...

    def announcement(self, text: str, by: str) -> None: ...

    def admin_changed(self, available: bool) -> None: ...

    def file_offered(self, offer: dict[str, Any]) -> None: ...

    def transfer_started(self, tid: str, title: str, total: int) -> None: ...

    def transfer_progress(self, tid: str, progress: Progress) -> None: ...

    def transfer_finished(self, tid: str, ok: bool, text: str) -> None: ...

    def transfer_note(self, tid: str, text: str) -> None: ...


@dataclass
class Context:
    """What every handler gets: the state, the view, a way to send, and the app's hooks."""

    state: AppState
    view: View
    send: Callable[[dict[str, Any]], None]
    transfers: Transfers
    post: Callable[[Callable[[], None]], None]  # run a callable on the UI thread (from worker threads)
    on_login: list[Callable[[], None]] = field(default_factory=list)
    credentials: Optional[Credentials] = None  # kept in memory to log in again after a reconnect
    device: str = ""  # the name this client logs in as, so the server gives it a token ("": none)
    keep_token: Callable[[Optional[Credentials]], None] = lambda credentials: None  # remember, or forget (None)

    def notice(self, key: str, text: str) -> None:
        """Show a notice line in a conversation."""
        line = Line("", text, notice=True)
        self.state.conversation(key).append(line)
        self.view.lines_added(self.state.conversation(key).key, [line], False)


class Dispatcher:
    """Maps event types to handlers and calls them, containing their failures."""

    def __init__(self, view: View) -> None:
        self.view = view
        self.handlers: dict[str, list[Handler]] = {}

    def register(self, event: str, handler: Handler) -> None:
        """Call ``handler`` for ``event`` (a type, or ``error:<command>`` for a command's errors)."""
        self.handlers.setdefault(event, []).append(handler)

    def route(self, message: dict[str, Any]) -> list[Handler]:
        """The handlers for a message; errors go to ``error:<command>``, else to ``error``."""
        kind = str(message.get("type"))
        if kind == "error":
            specific = self.handlers.get(f"error:{message.get('command')}")
            if specific:
                return specific
        return self.handlers.get(kind, [])

    def dispatch(self, message: Any) -> None:
        """Run the handlers for one message; one failing does not stop the others or the loop."""
        if not isinstance(message, dict):
            log.warning("ignoring a non-object message: %r", message)
            return
        handlers = self.route(message)
        if not handlers:
            if message.get("type") == "error":
                self.view.show_error(f"The server said: {message.get('reason') or message.get('code')}")
            else:
                log.debug("no handler for %r", message.get("type"))
            return
        for handler in handlers:
            try:
                handler(message)
            except Exception as exc:
                log.exception("handler %s failed on %r", getattr(handler, "__qualname__", handler), message.get("type"))
                try:
                    self.view.show_error(f"Could not handle {message.get('type')!r} from the server: {exc}")
                except Exception:
                    log.exception("showing an error failed")
