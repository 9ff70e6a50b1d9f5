"""Shared fixtures for the auth plugin's tests: a server with only ``auth``, and logged-in clients.

``backend_env`` chooses the store: SQLite (a single node, no settings) unless the test is
marked ``both_backends``, which runs it twice: on SQLite and on PostgreSQL and Redis (cluster
mode, a fresh database and Redis prefix), so both stores answer to the same tests. (A cluster
node takes about a second to stop, so only the tests that exercise the store are doubled.)"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from chatcore import protocol
from chatcore.server import ChatServer
from chatcore.testing import TestClient

BACKENDS = ("sqlite", "postgres")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "both_backends: run the test on SQLite and on PostgreSQL (cluster mode)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("both_backends") and "backend_env" in metafunc.fixturenames:
        metafunc.parametrize("backend_env", BACKENDS, indirect=True)


@pytest.fixture
def backend_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """The settings that choose the store: none (SQLite), or the test's cluster (PostgreSQL)."""
    if getattr(request, "param", "sqlite") == "sqlite":
        return {}
    return dict(request.getfixturevalue("cluster_env"))


@pytest.fixture
def server(make_server: Callable[..., ChatServer], backend_env: dict[str, str]) -> ChatServer:
    """A server with exactly the auth plugin, on each backend."""
    return make_server(plugins=["auth"], env=backend_env)




@pytest.fixture
def connect_from(connect: Callable[..., TestClient]) -> Callable[..., TestClient]:
    """``connect_from(server, "127.0.0.2")``: a client whose source is another loopback address,
    so per-address rules can be tested with several distinct client addresses."""

    def factory(server: ChatServer, source: str) -> TestClient:
        client = connect(server)
        client.sock.close()
        client.sock = socket.create_connection(("127.0.0.1", server.address[1]), timeout=client.timeout,
                                               source_address=(source, 0))
        client.reader = protocol.FrameReader(client.sock.recv_into, client.sock.settimeout)
        return client

    return factory


@pytest.fixture
def run_cli(tmp_path: Path, backend_env: dict[str, str]) -> Callable[..., subprocess.CompletedProcess]:
    """``run_cli("add", "dave", "--password-stdin", stdin=...)``: the real ``chatcore user`` command,
    with STORAGE_DIR at the data directory ``make_server`` uses, only the auth plugin, and the
    backend's settings."""

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
        env = {**os.environ, "STORAGE_DIR": str(tmp_path / "data"), "CHATCORE_PLUGINS": "auth", "LOG_LEVEL": "WARNING",
               **backend_env}
        return subprocess.run([sys.executable, "-m", "chatcore", "user", *args], input=stdin, capture_output=True,
                              text=True, env=env, cwd=tmp_path, timeout=60)

    return run
