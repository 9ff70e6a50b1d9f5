"""Dispatch: route one decoded request to its command's handler, and turn every refusal or
failure into an ``error`` reply that names the request (its ``command`` and ``client_id``)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Optional

from chatcore import protocol
from chatcore.errors import CommandError
from chatcore.logging import redact

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
    calls the handler (directly, or through ``chat_handle_message`` when a plugin wraps it)."""

    def __init__(self, server: "ChatServer") -> None:
        self._server = server
        self.direct = True  # no plugin wraps chat_handle_message: call handlers without pluggy

    def __call__(self, session: "Session", message: Any) -> None:
        if not isinstance(message, dict):
            send_error(session, None, "bad_request", "a message must be a JSON object")
            return
        echo = client_id_echo(message.get("client_id"))
        name = message["command"] if "command" in message else message.get("type")
        if not isinstance(name, str) or not name:
            send_error(session, None, "bad_request", "missing field 'command' (a string)", **echo)
            return
        server = self._server
        command = server.commands.get(name)
        if (command is None or command.limited) and not session.bucket.take():
            wait = round(session.bucket.wait_time(), 3)
            send_error(session, name, "rate_limited",
                       f"too many requests: at most {server.rate_limit:g} per second; retry in {wait:.1f} s",
                       retry_after=wait, **echo)
            return
        if command is None:
            send_error(session, name, "unknown_command", f"unknown command {protocol.echo(name)!r}", **echo)
            return
        if server.budget.is_disabled(command.plugin):
            send_error(session, name, "plugin_disabled",
                       f"the {command.plugin} plugin is disabled: {server.budget.disabled.get(command.plugin, '')}",
                       **echo)
            return
        if command.auth and session.user is None:
            send_error(session, name, "not_authenticated", f"log in before using {name!r}", **echo)
            return
        problem = command.field_problem(message)
        if problem is not None:
            send_error(session, name, "bad_request", problem, **echo)
            return
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%r -> %s %s", session, name, redact(message))
        try:
            reply = (command.handler(session, message) if self.direct else
                     server.hook.chat_handle_message(session=session, command=command, message=message))
            if reply is not None:
                session.send(reply)
        except CommandError as exc:
            send_error(session, name, exc.code, exc.reason, **{**echo, **exc.extra})
        except Exception:
            server.plugins.failed(command.plugin, f"command {name!r}")
            send_error(session, name, "internal_error", f"the server failed to handle {name!r}", **echo)
