"""Shared fixtures for the client's tests: a private pin store, logged-in api clients, a file keyring."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from keyrings.alt.file import PlaintextKeyring

from chatcore.testing import PASSWORD
from chatcore_client.api import ChatClient
from chatcore_client.keychain import Keychain
from chatcore_client.pinning import PinStore

ALL_PLUGINS = ["auth", "chat", "filexfer"]


@pytest.fixture
def pins(tmp_path: Path) -> PinStore:
    """A known-servers file in the test's temporary directory (never the user's own)."""
    return PinStore(tmp_path / "config" / "known_servers.json")


@pytest.fixture
def api_client(pins: PinStore) -> Iterator[Callable[..., ChatClient]]:
    """``api_client(server, user=None)``: a connected ChatClient, registered and logged in when
    ``user`` is given; all are closed at teardown."""
    opened: list[ChatClient] = []

    def factory(server: Any, user: str | None = None, password: str = PASSWORD) -> ChatClient:
        host, port = server.address
        client = ChatClient.connect(host, port, pins=pins, ask=lambda *_: True)
        opened.append(client)
        if user is not None:
            try:
                client.register(user, password)
            except Exception:
                pass  # already registered by an earlier client of this test
            client.login(user, password)
        return client

    yield factory
    for client in opened:
        client.close()


@pytest.fixture
def file_keychain(tmp_path: Path) -> Callable[[], Keychain]:
    """``file_keychain()``: a Keychain on keyrings.alt's file keyring in the test's directory, a
    real keyring backend standing in for the OS one (the client itself refuses it as plaintext
    when it picks a keyring; tests hand it over directly). Each call makes new objects over the
    same file, as a restart of the client would."""
    def factory() -> Keychain:
        backend = PlaintextKeyring()
        backend.file_path = str(tmp_path / "keyring" / "keyring_pass.cfg")
        return Keychain(backend)

    return factory
