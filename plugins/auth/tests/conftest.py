"""Shared fixtures for the auth plugin's tests: a server with only ``auth``, and logged-in clients."""

from __future__ import annotations

from typing import Callable

import pytest

from chatcore.server import ChatServer
from chatcore.testing import TestClient

PASSWORD = "correct horse battery"


class FakeClock:
    """A monotonic clock the test moves by hand (throttling without sleeping)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def server(make_server: Callable[..., ChatServer]) -> ChatServer:
    """A server with exactly the auth plugin."""
    return make_server(plugins=["auth"])


@pytest.fixture
def login_as(connect: Callable[..., TestClient]) -> Callable[..., TestClient]:
    """``login_as(server, name, password=PASSWORD, register=True)``: a client logged in as ``name``."""

    def factory(server: ChatServer, name: str, password: str = PASSWORD, register: bool = True) -> TestClient:
        client = connect(server)
        if register:
            reply = client.request(command="register", username=name, password=password)
            assert reply["response"] == "ok", reply
        reply = client.request(command="login", username=name, password=password)
        assert reply["response"] == "ok", reply
        return client

    return factory

