"""Shared fixtures for the chat plugin's tests: servers with auth + chat, and logged-in clients."""

from __future__ import annotations

import contextlib
import threading
from typing import Callable, Iterator

import pytest

from chatcore.server import ChatServer
from chatcore.testing import TestClient
from chatcore_chat.writer import Operation

# Cheap password hashing and no request rate limit: these tests exercise chat, not Argon2
# or the core's throttling (some send hundreds of messages from one session).
FAST_AUTH = {"CHATCORE_AUTH_ARGON2_TIME_COST": "1", "CHATCORE_AUTH_ARGON2_MEMORY_KIB": "1024",
             "CHATCORE_RATE_LIMIT": "1000000", "CHATCORE_RATE_BURST": "1000000"}


BACKENDS = ("sqlite", "postgres")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite_only: a test of a backend-parametrized module that reads or "
                                       "writes the SQLite files itself")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test that uses the ``backend`` fixture (a module opts in with
    ``pytestmark = pytest.mark.usefixtures("backend")``) runs once per message store, unless
    marked ``sqlite_only``."""
    if "backend" in metafunc.fixturenames:
        only = metafunc.definition.get_closest_marker("sqlite_only") is not None
        metafunc.parametrize("backend", BACKENDS[:1] if only else BACKENDS)


@pytest.fixture
def backend_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """The settings that select the test's message store: none for SQLite, a cluster of its own
    (fresh PostgreSQL database and Redis prefix) for PostgreSQL. Set up before the servers, so
    the database outlives them."""
    if "backend" not in request.fixturenames or request.getfixturevalue("backend") == "sqlite":
        return {}
    return dict(request.getfixturevalue("cluster_env"))


@pytest.fixture
def chat_server(backend_env: dict[str, str], make_server: Callable[..., ChatServer]) -> Callable[..., ChatServer]:
    """``chat_server(env={...}, extra=[...])``: a server with the real auth and chat plugins
    (in a cluster of its own when the test's ``backend`` is PostgreSQL)."""

    def factory(env: dict[str, str] | None = None, **kwargs) -> ChatServer:
        return make_server(plugins=kwargs.pop("plugins", ["auth", "chat"]),
                           env={**FAST_AUTH, **backend_env, **(env or {})}, **kwargs)

    return factory


@pytest.fixture
def server(chat_server: Callable[..., ChatServer]) -> ChatServer:
    return chat_server()






def send_chat(client: TestClient, peer: str, text: object, **extra: object) -> dict:
    """Send ``chat`` and return its reply: ``chat_ack`` or ``error``.

    (``TestClient.request`` takes the message dict as its first argument, so a ``message=``
    keyword would clash; the chat reply's type is also not the command's name.)
    """
    client.send({"command": "chat", "peer": peer, "message": text, **extra})
    return client.expect(("chat_ack", "error"))


def get_history(client: TestClient, peer: str, **extra: object) -> dict:
    """Send ``get_history`` and return its reply (``get_history`` or ``error``)."""
    return client.request({"command": "get_history", "peer": peer, **extra})


@pytest.fixture
def chat() -> Callable[..., dict]:
    """``chat(client, peer, text, **extra)`` -> the ``chat_ack`` or ``error`` reply."""
    return send_chat


@pytest.fixture
def history() -> Callable[..., dict]:
    """``history(client, peer, **extra)`` -> the ``get_history`` or ``error`` reply."""
    return get_history


class Barrier(Operation):
    """A no-op for the chat writer whose follow-up runs after every earlier one (delivery included)."""

    def __init__(self) -> None:
        super().__init__()
        self.passed = threading.Event()

    def after(self, batch) -> None:
        self.passed.set()


@pytest.fixture
def settle() -> Callable[..., list]:
    """``settle(server, client)``: wait until the chat writer delivered everything queued so far,
    then return what ``client`` received (``TestClient.sync``). No sleeping: offline and live
    messages are sent by the writer thread, so a ping round trip alone does not cover them."""

    def wait(server: ChatServer, client: TestClient | None = None) -> list:
        barrier = Barrier()
        server.pm.get_plugin("chat").service.writer.submit(barrier)
        assert barrier.passed.wait(10), "the chat writer did not catch up"
        return client.sync() if client is not None else []

    return wait


@pytest.fixture
def writer_held() -> Callable[..., contextlib.AbstractContextManager]:
    """``with writer_held(server):`` keeps the chat writer busy for the block, so what clients
    have sent by its end (a ``sync`` after their requests tells) is committed as one batch."""

    @contextlib.contextmanager
    def hold(server: ChatServer) -> Iterator[None]:
        gate, holding = threading.Event(), threading.Event()

        class Hold(Operation):
            def after(self, batch) -> None:
                holding.set()
                assert gate.wait(10), "the writer was held too long"

        writer = server.pm.get_plugin("chat").service.writer
        threading.Thread(target=writer.submit, args=(Hold(),), daemon=True).start()
        assert holding.wait(10), "the chat writer never took the hold"
        try:
            yield
        finally:
            gate.set()

    return hold
