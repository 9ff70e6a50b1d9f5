"""Remembered logins ("Remember me"): per server, the username and the device token the server
gave this client. Never a password. A cluster's nodes share one login (one token works on any
of them), keyed by the server list's ``servers.list_key``; a single server's key is ``host:port``.

The token goes into the OS keyring when there is a real one (``keychain.py``); ``logins.json``
in the user's config directory (mode 0600) then keeps only what is not secret: the username,
the device name and ``"keyring": true``. Without a keyring, or when it refuses, the token is
kept in that file itself. Reading takes the keyring's token first, then the file's; a login
whose token is in neither is not remembered (the Login window asks for the password).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, Optional

from chatcore_client.handlers import Credentials
from chatcore_client.keychain import Keychain, account, system_keychain
from chatcore_client.pinning import default_path, write_private_json

FILENAME = "logins.json"


class TokenStore:
    """``{"host:port": {"username", "device", "token" | "keyring": true}}`` in one private JSON
    file, the tokens themselves in ``keychain`` when one is given. ``key`` is a server's
    ``host:port`` or a cluster's list key."""

    def __init__(self, path: Path, keychain: Optional[Keychain] = None) -> None:
        self.path = path
        self.keychain = keychain
        self._lock = threading.Lock()

    @classmethod
    def for_settings(cls, known_servers: Optional[Path], keyring_mode: str) -> TokenStore:
        """The app's store: ``logins.json`` beside the known-servers file, the tokens in the OS
        keyring unless ``keyring_mode`` is "off" or there is no real one."""
        return cls((known_servers or default_path()).with_name(FILENAME), system_keychain(keyring_mode))

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}  # missing or unreadable: nothing remembered (the user logs in with the password)
        return {k: v for k, v in data.items() if isinstance(v, dict)} if isinstance(data, dict) else {}

    def get(self, key: str) -> Optional[Credentials]:
        """The remembered login for a server (or cluster), or None."""
        with self._lock:
            entry = self._load().get(key, {})
            username = entry.get("username")
            if not isinstance(username, str):
                return None
            token = None
            if entry.get("keyring") is True and self.keychain is not None:
                token = self.keychain.get(account(key, username))
            if token is None:
                token = entry.get("token")
        if not isinstance(token, str) or not token:
            return None
        return Credentials(username, token=token, device=str(entry.get("device", "")))

    def save(self, key: str, credentials: Credentials) -> None:
        """Remember the token login for a server (replacing any earlier one): in the keyring when
        it takes it, else in the file."""
        assert credentials.token is not None and credentials.password is None
        name = account(key, credentials.username)
        with self._lock:
            data = self._load()
            earlier = data.get(key, {})
            entry: dict[str, Any] = {"username": credentials.username, "device": credentials.device}
            if self.keychain is not None and self.keychain.set(name, credentials.token):
                entry["keyring"] = True
            else:
                entry["token"] = credentials.token
            moved = not entry.get("keyring") or earlier.get("username") != credentials.username
            if earlier.get("keyring") is True and moved:
                self._delete_secret(key, earlier)  # no stale token left behind in the keyring
            data[key] = entry
            write_private_json(self.path, data)

    def forget(self, key: str) -> None:
        """Forget a server's login, in the file and the keyring (its token was refused, the device
        was signed out, or "Remember me" was off)."""
        with self._lock:
            data = self._load()
            entry = data.pop(key, None)
            if entry is None:
                return
            write_private_json(self.path, data)
            self._delete_secret(key, entry)

    def _delete_secret(self, key: str, entry: dict[str, Any]) -> None:
        username = entry.get("username")
        if self.keychain is not None and isinstance(username, str):
            self.keychain.delete(account(key, username))
