"""Shared pieces of the core tests: a probe plugin that adds test commands and reports hooks."""

from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Optional

import pytest

from chatcore import CommandError, hookimpl
from chatcore.server import ChatServer
from chatcore.session import Session


class ProbePlugin:
    """A throwaway plugin registered by tests: commands that misbehave on purpose, and hook events."""

    def __init__(self) -> None:
        self.server: Optional[ChatServer] = None
        self.opened: "queue.Queue[Session]" = queue.Queue()
        self.closed: "queue.Queue[Session]" = queue.Queue()
        self.shutdown_calls = 0
        self.held: "queue.Queue[str]" = queue.Queue()  # sessions whose hold began (their user or address)
        self.release = threading.Event()  # ends every hold

    @hookimpl
    def chat_configure(self, server: ChatServer) -> None:
        self.server = server

    @hookimpl
    def chat_register_commands(self, register: Callable[..., Any]) -> None:
        register("whoami", lambda s, m: {"type": "whoami", "user": s.user})
        register("boom", self.boom, auth=False)
        register("refuse", self.refuse, auth=False)
        register("typed", lambda s, m: {"type": "typed", "ok": True}, auth=False,
                 fields={"n": int, "s": str}, optional={"f": float, "flag": bool})
        register("pretend_login", self.pretend_login, auth=False, fields={"name": str})
        register("blast", self.blast, auth=False, fields={"count": int, "size": int})
        register("pipelined", lambda s, m: {"type": "pipelined", "more": s.more_requests}, auth=False)
        register("hold", self.hold, auth=False)

    @hookimpl
    def chat_session_opened(self, session: Session) -> None:
        self.opened.put(session)

    @hookimpl
    def chat_session_closed(self, session: Session) -> None:
        self.closed.put(session)

    @hookimpl
    def chat_shutdown(self, server: ChatServer) -> None:
        self.shutdown_calls += 1

    def boom(self, session: Session, message: dict[str, Any]) -> None:
        raise RuntimeError("handler bug")

    def hold(self, session: Session, message: dict[str, Any]) -> dict[str, Any]:
        """Block this request's worker until ``release`` is set (a handler that blocks)."""
        self.held.put(repr(session))
        return {"type": "hold", "released": self.release.wait(10)}

    def refuse(self, session: Session, message: dict[str, Any]) -> None:
        raise CommandError("refused", "no, thank you", retry_after=3)

    def pretend_login(self, session: Session, message: dict[str, Any]) -> dict[str, Any]:
        assert self.server is not None
        first = self.server.login(session, message["name"])
        return {"type": "pretend_login", "first": first}

    def blast(self, session: Session, message: dict[str, Any]) -> dict[str, Any]:
        """Queue ``count`` frames of ``size`` characters to every other session."""
        assert self.server is not None
        others = [s for s in self.server.sessions.all() if s is not session]
        payload = {"type": "blast", "data": "x" * message["size"]}
        for _ in range(message["count"]):
            self.server.sessions.broadcast(payload, others)
        return {"type": "blast", "sessions": len(others)}


@pytest.fixture
def probe() -> ProbePlugin:
    return ProbePlugin()


@pytest.fixture
def probe_server(make_server: Callable[..., ChatServer], probe: ProbePlugin) -> ChatServer:
    """A server with no installed plugins, only the probe."""
    return make_server(plugins=[], extra=[("probe", probe)])
