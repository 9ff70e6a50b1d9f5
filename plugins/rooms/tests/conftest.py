"""Shared fixtures for the rooms plugin's tests: servers with auth + chat + rooms, v2 clients."""

from __future__ import annotations

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


@pytest.fixture
def rooms_server(make_server: Callable[..., ChatServer]) -> Callable[..., ChatServer]:
    """``rooms_server(env={...})``: a server with the real auth, chat and rooms plugins."""

    def factory(env: dict[str, str] | None = None, **kwargs: Any) -> ChatServer:
        return make_server(plugins=kwargs.pop("plugins", PLUGINS), env={**FAST_AUTH, **(env or {})}, **kwargs)

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


def kinds(messages: list) -> list:
    return [(m.get("type"), m.get("kind")) for m in messages]


class Kit:
    """The helpers above, for tests (conftest modules cannot be imported under importlib mode)."""

    ask = staticmethod(ask)
    post = staticmethod(post)
    settle = staticmethod(settle)
    read_list = staticmethod(read_list)
    kinds = staticmethod(kinds)


@pytest.fixture
def kit() -> Kit:
    return Kit()
