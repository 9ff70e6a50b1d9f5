"""Remembered logins with and without a keyring: the token in a real keyring backend (keyrings.alt's
file keyring in the test's directory) and only the non-secret parts in logins.json; the file
alone without a keyring; a keyring that fails falls back to the file with a warning, never a
crash; forgetting removes the token from both; which backends count as a real keyring."""

from __future__ import annotations

import json
import logging
import stat
from typing import Iterator, Optional

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail, null
from keyring.errors import KeyringLocked
from keyrings.alt.file import PlaintextKeyring

from chatcore_client.handlers import Credentials
from chatcore_client.keychain import SERVICE, Keychain, account, system_keychain, usable
from chatcore_client.tokens import TokenStore

SERVER = "chat.example:7000"  # a server's key (a cluster's is its list's)
ANN = Credentials("ann", token="t0k3n-of-ann", device="desktop on test")


class LockedKeyring(KeyringBackend):
    """A keyring that is there but refuses every call, as a locked one or one whose D-Bus is gone."""

    priority = 5  # type: ignore[assignment]  # what a real OS keyring reports
    viable = False  # never chosen by keyring's own detection in this process

    def get_password(self, service: str, username: str) -> Optional[str]:
        raise KeyringLocked("the keyring is locked")

    def set_password(self, service: str, username: str, password: str) -> None:
        raise KeyringLocked("the keyring is locked")

    def delete_password(self, service: str, username: str) -> None:
        raise KeyringLocked("the keyring is locked")


class TrustedFileKeyring(PlaintextKeyring):
    """keyrings.alt's file keyring claiming an OS keyring's priority, to see system_keychain take it."""

    priority = 5  # type: ignore[assignment]
    viable = False


def entries(store: TokenStore) -> dict[str, dict[str, object]]:
    return json.loads(store.path.read_text(encoding="utf-8"))


def test_with_a_keyring_the_file_keeps_no_token_and_a_restart_reads_it_from_the_keyring(tmp_path, file_keychain):
    store = TokenStore(tmp_path / "logins.json", file_keychain())
    store.save(SERVER, ANN)
    assert entries(store) == {SERVER: {"username": "ann", "device": "desktop on test", "keyring": True}}
    assert ANN.token not in store.path.read_text() and stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert file_keychain().backend.get_password(SERVICE, account(SERVER, "ann")) == ANN.token
    assert TokenStore(store.path, file_keychain()).get(SERVER) == ANN


def test_without_a_keyring_the_file_keeps_the_token(tmp_path):
    store = TokenStore(tmp_path / "logins.json")
    store.save(SERVER, ANN)
    assert entries(store)[SERVER]["token"] == ANN.token
    assert TokenStore(store.path).get(SERVER) == ANN


def test_a_token_written_to_the_file_before_is_still_read_with_a_keyring(tmp_path, file_keychain):
    TokenStore(tmp_path / "logins.json").save(SERVER, ANN)  # an older client, or the keyring was off
    assert TokenStore(tmp_path / "logins.json", file_keychain()).get(SERVER) == ANN


def test_forgetting_removes_the_token_from_the_keyring_and_the_file(tmp_path, file_keychain):
    store = TokenStore(tmp_path / "logins.json", file_keychain())
    store.save(SERVER, ANN)
    store.save("other.example:7000", Credentials("bo", token="bo-token"))
    store.forget(SERVER)
    assert store.get(SERVER) is None and SERVER not in entries(store)
    assert file_keychain().get(account(SERVER, "ann")) is None
    assert store.get("other.example:7000") == Credentials("bo", token="bo-token")  # the other server's stays
    store.forget(SERVER)  # forgetting twice is harmless


def test_a_token_in_neither_place_is_no_remembered_login(tmp_path, file_keychain):
    store = TokenStore(tmp_path / "logins.json", file_keychain())
    store.save(SERVER, ANN)
    file_keychain().delete(account(SERVER, "ann"))  # e.g. the user cleared it in the OS's keyring manager
    assert store.get(SERVER) is None


def test_another_user_on_the_same_server_leaves_no_stale_token_in_the_keyring(tmp_path, file_keychain):
    store = TokenStore(tmp_path / "logins.json", file_keychain())
    store.save(SERVER, ANN)
    store.save(SERVER, Credentials("cy", token="cy-token"))
    assert file_keychain().get(account(SERVER, "ann")) is None
    assert store.get(SERVER) == Credentials("cy", token="cy-token")


def test_a_keyring_that_refuses_falls_back_to_the_file_with_a_warning(tmp_path, caplog):
    store = TokenStore(tmp_path / "logins.json", Keychain(LockedKeyring()))
    with caplog.at_level(logging.WARNING, logger="chatcore_client.keychain"):
        store.save(SERVER, ANN)
    assert entries(store)[SERVER]["token"] == ANN.token and "keyring" not in entries(store)[SERVER]
    assert any("could not store the device token in the keyring" in r.getMessage() and "locked" in r.getMessage()
               for r in caplog.records)
    assert store.get(SERVER) == ANN
    store.forget(SERVER)  # the keyring refuses the delete too: logged, the file entry still goes
    assert store.get(SERVER) is None and entries(store) == {}


def test_a_keyring_that_fails_when_read_gives_no_login_and_no_crash(tmp_path, file_keychain, caplog):
    TokenStore(tmp_path / "logins.json", file_keychain()).save(SERVER, ANN)
    locked = TokenStore(tmp_path / "logins.json", Keychain(LockedKeyring()))
    with caplog.at_level(logging.WARNING, logger="chatcore_client.keychain"):
        assert locked.get(SERVER) is None  # the Login window asks for the password
    assert any("could not read the device token" in r.getMessage() for r in caplog.records)


def test_which_backends_count_as_a_real_keyring():
    assert not usable(fail.Keyring()) and not usable(null.Keyring())
    assert not usable(PlaintextKeyring())  # a plaintext file is no better than logins.json
    assert usable(LockedKeyring()) and usable(TrustedFileKeyring())  # locked is still a keyring: calls fall back


@pytest.fixture
def process_keyring() -> Iterator[None]:
    """Lets a test set the process's keyring (keyring.set_keyring) and puts the earlier one back."""
    before = keyring.get_keyring()
    yield
    keyring.set_keyring(before)


def test_the_client_takes_the_process_keyring_only_when_it_is_a_real_one(process_keyring, tmp_path):
    keyring.set_keyring(fail.Keyring())
    assert system_keychain("auto") is None
    keyring.set_keyring(PlaintextKeyring())
    assert system_keychain("auto") is None
    trusted = TrustedFileKeyring()
    trusted.file_path = str(tmp_path / "keyring.cfg")
    keyring.set_keyring(trusted)
    chosen = system_keychain("auto")
    assert chosen is not None and chosen.backend is trusted
    assert system_keychain("off") is None  # CHATCORE_CLIENT_KEYRING=off: the file only
    app_store = TokenStore.for_settings(tmp_path / "known_servers.json", "auto")
    assert app_store.path == tmp_path / "logins.json" and app_store.keychain is not None
    assert TokenStore.for_settings(tmp_path / "known_servers.json", "off").keychain is None

