"""Shared fixtures for the auth plugin's tests: a server with only ``auth``, and logged-in clients."""

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


@pytest.fixture
def server(make_server: Callable[..., ChatServer]) -> ChatServer:
    """A server with exactly the auth plugin."""
    return make_server(plugins=["auth"])




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
def run_cli(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess]:
    """``run_cli("add", "dave", "--password-stdin", stdin=...)``: the real ``chatcore user`` command,
    with STORAGE_DIR at the data directory ``make_server`` uses, and only the auth plugin."""

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
        env = {**os.environ, "STORAGE_DIR": str(tmp_path / "data"), "CHATCORE_PLUGINS": "auth", "LOG_LEVEL": "WARNING"}
        return subprocess.run([sys.executable, "-m", "chatcore", "user", *args], input=stdin, capture_output=True,
                              text=True, env=env, cwd=tmp_path, timeout=60)

    return run
