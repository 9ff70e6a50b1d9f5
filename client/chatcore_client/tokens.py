"""Remembered logins ("Remember me"): per server, the username and the device token the server
gave this client, in the user's config directory (mode 0600). Never a password."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Optional

from chatcore_client.handlers import Credentials
from chatcore_client.pinning import server_key, write_private_json

FILENAME = "logins.json"


class TokenStore:
    """``{"host:port": {"username", "token", "device"}}`` in one private JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def _load(self) -> dict[str, dict[str, str]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}  # missing or unreadable: nothing remembered (the user logs in with the password)
        return {k: v for k, v in data.items() if isinstance(v, dict)} if isinstance(data, dict) else {}

    def get(self, host: str, port: int) -> Optional[Credentials]:
        """The remembered login for a server, or None."""
        with self._lock:
            entry = self._load().get(server_key(host, port), {})
        username, token = entry.get("username"), entry.get("token")
        if not isinstance(username, str) or not isinstance(token, str):
            return None
        return Credentials(username, token=token, device=str(entry.get("device", "")))

    def save(self, host: str, port: int, credentials: Credentials) -> None:
        """Remember the token login for a server (replacing any earlier one)."""
        assert credentials.token is not None and credentials.password is None
        with self._lock:
            data = self._load()
            data[server_key(host, port)] = {"username": credentials.username, "token": credentials.token,
                                            "device": credentials.device}
            write_private_json(self.path, data)

    def forget(self, host: str, port: int) -> None:
        """Forget a server's login (its token was refused, or the user logged out)."""
        with self._lock:
            data = self._load()
            if data.pop(server_key(host, port), None) is not None:
                write_private_json(self.path, data)
