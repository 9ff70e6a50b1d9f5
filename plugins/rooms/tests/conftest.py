"""Shared fixtures for the rooms plugin's tests: servers with auth + chat + rooms, v2 clients,
on SQLite or (a module opting in to ``backend``) on each store in turn, as chat's tests do."""

from __future__ import annotations

import sqlite3
import threading
from typing import Any, Callable

import pytest

from chatcore.server import ChatServer
from chatcore.testing import TestClient
from chatcore_chat.writer import Operation

PLUGINS = ["auth", "chat", "rooms"]
# Cheap password hashing and no request rate limit: these tests exercise rooms, not Argon2.
FAST_AUTH = {"CHATCORE_AUTH_ARGON2_TIME_COST": "1", "CHATCORE_AUTH_ARGON2_MEMORY_KIB": "1024",
             "CHATCORE_RATE_LIMIT": "1000000", "CHATCORE_RATE_BURST": "1000000"}


BACKENDS = ("sqlite", "postgres")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite_only: a test of a backend-parametrized module that reads or "
                                       "writes the SQLite files itself")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test that uses the ``backend`` fixture (a module opts in with
    ``pytestmark = pytest.mark.usefixtures("backend")``) runs once per store, unless marked ``sqlite_only``."""
    if "backend" in metafunc.fixturenames:
        only = metafunc.definition.get_closest_marker("sqlite_only") is not None
        metafunc.parametrize("backend", BACKENDS[:1] if only else BACKENDS)


@pytest.fixture
def backend_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """The settings that select the test's store: none for SQLite, a cluster of its own (fresh
    PostgreSQL database and Redis prefix) for PostgreSQL. Set up before the servers, so the
    database outlives them (a restart reopens it)."""
    if "backend" not in request.fixturenames or request.getfixturevalue("backend") == "sqlite":
        return {}
    return dict(request.getfixturevalue("cluster_env"))


@pytest.fixture
def rooms_server(backend_env: dict[str, str], make_server: Callable[..., ChatServer]) -> Callable[..., ChatServer]:
    """``rooms_server(env={...})``: a server with the real auth, chat and rooms plugins (in a
    cluster of its own when the test's ``backend`` is PostgreSQL)."""

    def factory(env: dict[str, str] | None = None, **kwargs: Any) -> ChatServer:
        return make_server(plugins=kwargs.pop("plugins", PLUGINS), env={**FAST_AUTH, **backend_env, **(env or {})},
                           **kwargs)

    return factory


@pytest.fixture
def server(rooms_server: Callable[..., ChatServer]) -> ChatServer:
    return rooms_server()


@pytest.fixture
def user(login_as: Callable[..., TestClient]) -> Callable[..., TestClient]:
    """``user(server, name, register=True)``: a v2 client logged in, its login ``room_list``
    frames already read (kept in ``client.room_list``: the final frame, with every entry merged)."""

    def factory(server: ChatServer, name: str, register: bool = True) -> TestClient:
        client = login_as(server, name, register=register, v2=True)
        client.room_list = read_list(client)  # type: ignore[attr-defined]
        return client

    return factory


def read_list(client: TestClient) -> dict[str, Any]:
    """Every ``room_list`` frame up to the final one, merged into one."""
    merged: dict[str, Any] = {"rooms": [], "private": [], "invites": []}
    while True:
        frame = client.expect("room_list")
        for key in ("rooms", "private", "invites"):
            merged[key].extend(frame[key])
        if frame["final"]:
            merged["as_of"] = frame["as_of"]
            return merged


def ask(client: TestClient, command: str, **fields: Any) -> dict[str, Any]:
    """Send a rooms command and return its reply (``<command>_result``, the read reply, or ``error``)."""
    replies = {"room_message": "room_ack"}
    client.send({"command": command, **fields})
    return client.expect((replies.get(command, f"{command}_result"), command, "error"))


def post(client: TestClient, room: str, text: str, **extra: Any) -> dict[str, Any]:
    """``room_message`` and its reply (``room_ack`` or ``error``)."""
    client.send({"command": "room_message", "room": room, "message": text, **extra})
    return client.expect(("room_ack", "error"))


class Barrier(Operation):
    """A no-op for the rooms writer whose follow-up runs after every earlier one."""

    def __init__(self) -> None:
        super().__init__()
        self.passed = threading.Event()

    def after(self, batch: Any) -> None:
        self.passed.set()


def settle(server: ChatServer, client: TestClient | None = None) -> list:
    """Wait until the rooms writer sent everything queued so far; then what ``client`` received."""
    barrier = Barrier()
    server.pm.get_plugin("rooms").service.writer.submit(barrier)
    assert barrier.passed.wait(10), "the rooms writer did not catch up"
    return client.sync() if client is not None else []


def query(server: ChatServer, sql: str) -> list:
    """The rows of ``sql`` (no parameters) on the server's rooms store: its SQLite file, or in
    cluster mode its ``rooms`` schema."""
    if server.cluster is not None:
        with server.cluster.database.schema("rooms").connection() as conn:
            return [tuple(row) for row in conn.execute(sql).fetchall()]
    conn = sqlite3.connect(server.data_dir / "rooms" / "rooms.sqlite3")
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def kinds(messages: list) -> list:
    return [(m.get("type"), m.get("kind")) for m in messages]


class Kit:
    """The helpers above, for tests (conftest modules cannot be imported under importlib mode)."""

    ask = staticmethod(ask)
    post = staticmethod(post)
    settle = staticmethod(settle)
    read_list = staticmethod(read_list)
    kinds = staticmethod(kinds)
    query = staticmethod(query)


@pytest.fixture
def kit() -> Kit:
    return Kit()
