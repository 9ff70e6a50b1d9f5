"""The core's own plugin: ``hello``, ``ping``, the administrators' ``admin_announce`` and
``admin_kick``, the default message handler, the core's part of a backup (its TLS files), and
counting sessions opened and closed for the metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional

from chatcore import __version__, protocol
from chatcore.errors import CommandError
from chatcore.moderation import ModerationCommands
from chatcore.plugins import hookimpl
from chatcore.registry import Command
from chatcore.tls import CERT_NAME, KEY_NAME

if TYPE_CHECKING:
    from chatcore.backup import Backup
    from chatcore.config import Config
    from chatcore.server import ChatServer
    from chatcore.session import Session

PROTOCOL_VERSION = 2
TLS_DIR = "tls"  # <data>/tls: the self-signed certificate (ChatServer.plugin_dir("tls"))


class CorePlugin:
    """Always registered under the name ``core``; it cannot be disabled."""

    def __init__(self) -> None:
        self.server: Optional["ChatServer"] = None

    @hookimpl
    def chat_configure(self, server: "ChatServer") -> None:
        self.server = server

    @hookimpl
    def chat_register_commands(self, register: Callable[..., Command]) -> None:
        register("hello", self.hello, auth=False, optional={"client": str, "protocol": int})
        register("ping", self.ping, auth=False)
        assert self.server is not None
        moderation = ModerationCommands(self.server)
        register("admin_announce", moderation.admin_announce, fields={"text": str})
        register("admin_kick", moderation.admin_kick, fields={"username": str}, optional={"device": str, "reason": str})

    @hookimpl(trylast=True)
    def chat_handle_message(self, session: "Session", command: Command,
                            message: dict[str, Any]) -> Optional[dict[str, Any]]:
        return command.handler(session, message)

    @hookimpl
    def chat_backup(self, config: "Config", backup: "Backup") -> None:
        """The self-signed certificate and key made in ``<data>/tls``: clients pinned its
        fingerprint, so a restored server must present the same one."""
        for name in (CERT_NAME, KEY_NAME):
            path = config.data_dir / TLS_DIR / name
            if path.is_file():
                backup.file(path)

    @hookimpl(tryfirst=True)  # counted before any plugin hears of it
    def chat_session_opened(self, session: "Session") -> None:
        assert self.server is not None
        self.server.metrics.session_opened(session)

    @hookimpl(tryfirst=True)
    def chat_session_closed(self, session: "Session") -> None:
        """Count the session's end by its close reason (send buffer full, idle, ...)."""
        assert self.server is not None
        self.server.metrics.session_closed(session)

    def hello(self, session: "Session", message: dict[str, Any]) -> dict[str, Any]:
        """Agree on the protocol version and tell the client what this server offers."""
        assert self.server is not None
        requested = message.get("protocol", 1)
        if requested < 1:
            raise CommandError("bad_request", "field 'protocol' must be 1 or more")
        session.protocol = min(requested, PROTOCOL_VERSION)
        session.client_name = str(message.get("client", ""))[:100]
        reply: dict[str, Any] = {
            "type": "hello", "server": "chatcore", "version": __version__,
            "protocol": PROTOCOL_VERSION, "plugins": self.server.active_plugins(),
            "commands": self.server.active_commands(), "max_frame": protocol.MAX_FRAME,
            "tls": session.tls, "idle_timeout": self.server.idle_timeout or 0,
            "rate_limit": self.server.rate_limit, "rate_burst": self.server.rate_burst,
        }
        for _, extra in self.server.plugins.each("chat_hello", session=session, message=message):
            for key, value in (extra or {}).items():
                reply.setdefault(key, value)
        return reply

    def ping(self, session: "Session", message: dict[str, Any]) -> dict[str, Any]:
        """Keep-alive and round-trip probe; echoes ``nonce`` if given."""
        reply: dict[str, Any] = {"type": "pong"}
        if "nonce" in message:
            reply["nonce"] = message["nonce"]
        return reply
