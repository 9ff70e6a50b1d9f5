"""Dispatch: route one decoded request to its command's handler, and turn every refusal or
failure into an ``error`` reply that names the request (its ``command`` and ``client_id``)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Optional

from chatcore import protocol
from chatcore.errors import CommandError
from chatcore.logging import redact
from chatcore.metrics import NO_COMMAND, OK, UNKNOWN_COMMAND

if TYPE_CHECKING:
    from chatcore.server import ChatServer
    from chatcore.session import Session

log = logging.getLogger(__name__)


def send_error(session: "Session", command: Optional[str], code: str, reason: str, **extra: Any) -> None:
    """Send ``error`` {command, code, reason, **extra} to ``session``."""
    session.send({**extra, "type": "error", "command": command, "code": code, "reason": reason})


def client_id_echo(client_id: Any) -> dict[str, Any]:
    """The ``client_id`` field an error reply echoes: a string one, cut to MAX_CLIENT_ID."""
    return {"client_id": client_id[:protocol.MAX_CLIENT_ID]} if isinstance(client_id, str) else {}


class Dispatcher:
    """Checks a request against the registry, the rate limit, login and the fault budget, then
    calls the handler (directly, or through ``chat_handle_message`` when a plugin wraps it).

    Every request is counted for the metrics by command and result (``ok``, or the error code
    it was answered with): one lock and one dict update, made before the answer is sent, so a
    client holding its answer finds it counted."""

    def __init__(self, server: "ChatServer") -> None:
        self._server = server
        self._count = server.metrics.requests.add
        self.direct = True  # no plugin wraps chat_handle_message: call handlers without pluggy

    def _refuse(self, session: "Session", label: str, command: Optional[str], code: str, reason: str,
                request: Optional[dict[str, Any]] = None, **extra: Any) -> None:
        """Count the request as refused with ``code``, then answer it with that error (echoing
        the ``request``'s ``client_id``, worked out only here: most requests are not refused)."""
        self._count((label, code))
        echo = client_id_echo(request.get("client_id")) if request is not None else {}
        send_error(session, command, code, reason, **{**echo, **extra})

    def __call__(self, session: "Session", message: Any) -> None:
        if not isinstance(message, dict):
            self._refuse(session, NO_COMMAND, None, "bad_request", "a message must be a JSON object")
            return
        name = message["command"] if "command" in message else message.get("type")
        if not isinstance(name, str) or not name:
            self._refuse(session, NO_COMMAND, None, "bad_request", "missing field 'command' (a string)", message)
            return
        server = self._server
        command = server.commands.get(name)
        if (command is None or command.limited) and not session.bucket.take():
            wait = round(session.bucket.wait_time(), 3)
            self._refuse(session, name if command is not None else UNKNOWN_COMMAND, name, "rate_limited",
                         f"too many requests: at most {server.rate_limit:g} per second; retry in {wait:.1f} s",
                         message, retry_after=wait)
            return
        if command is None:  # a name no plugin registered is counted as "(unknown)", never by its text
            self._refuse(session, UNKNOWN_COMMAND, name, "unknown_command", f"unknown command {protocol.echo(name)!r}",
                         message)
            return
        if server.budget.is_disabled(command.plugin):
            self._refuse(session, name, name, "plugin_disabled",
                         f"the {command.plugin} plugin is disabled: {server.budget.disabled.get(command.plugin, '')}",
                         message)
            return
        if command.auth and session.user is None:
            self._refuse(session, name, name, "not_authenticated", f"log in before using {name!r}", message)
            return
        problem = command.field_problem(message)
        if problem is not None:
            self._refuse(session, name, name, "bad_request", problem, message)
            return
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%r -> %s %s", session, name, redact(message))
        try:
            reply = (command.handler(session, message) if self.direct else
                     server.hook.chat_handle_message(session=session, command=command, message=message))
            frame = protocol.encode(reply) if reply is not None else None  # a reply that cannot be sent is the handler's failure
        except CommandError as exc:
            self._refuse(session, name, name, exc.code, exc.reason, message, **exc.extra)
            return
        except Exception:
            server.plugins.failed(command.plugin, f"command {name!r}")
            self._refuse(session, name, name, "internal_error", f"the server failed to handle {name!r}", message)
            return
        self._count((name, OK))
        if frame is not None:
            session.send_frame(frame)
