"""The OS keyring (macOS Keychain, Windows Credential Locker, the Secret Service or KWallet on
Linux) as the place for device tokens, through the ``keyring`` library, when there is a real one.

"Real" is keyring's own line: a backend of priority 1 or more ("recommended"). That leaves out
its fail and null backends (no keyring at all) and the file-based ones of ``keyrings.alt``
(plaintext 0.5, encrypted 0.6): a plaintext file is no better than ``logins.json`` at mode 0600,
so then the token stays there. A keyring that fails when used (locked, D-Bus gone) must never
crash the client: every call here logs a warning and answers as if nothing were stored.
"""

from __future__ import annotations

import logging
from typing import Optional

import keyring
from keyring.backend import KeyringBackend
from keyring.backends.chainer import ChainerBackend
from keyring.errors import PasswordDeleteError

log = logging.getLogger(__name__)

SERVICE = "chatcore"  # the keyring's "service"; the account is "<host:port>|<username>"
RECOMMENDED_PRIORITY = 1.0  # keyring: "a priority of one or greater is recommended"


def usable(backend: KeyringBackend) -> bool:
    """Whether ``backend`` keeps secrets better than a private file: priority 1 or more. A chain
    writes to its first backend, so it is judged by that one."""
    if isinstance(backend, ChainerBackend):
        chained = list(backend.backends)
        return bool(chained) and usable(chained[0])
    try:
        return float(backend.priority) >= RECOMMENDED_PRIORITY
    except Exception:  # a backend's priority may probe its service; failing to is "not usable"
        return False


def system_keychain(mode: str = "auto") -> Optional[Keychain]:
    """The keyring this process would use (keyring's own choice, which ``PYTHON_KEYRING_BACKEND``
    and keyring's config file can steer), or None: ``mode`` "off" (``CHATCORE_CLIENT_KEYRING``),
    or no real keyring here."""
    if mode == "off":
        return None
    try:
        backend = keyring.get_keyring()
    except Exception as exc:
        log.warning("no OS keyring (%s): remembered logins keep their token in the private file", exc)
        return None
    if not usable(backend):
        log.info("keyring backend %s is not a real OS keyring: remembered logins keep their token in the "
                 "private file", backend)
        return None
    return Keychain(backend)


def account(server: str, username: str) -> str:
    """The keyring account of a remembered login: ``<host:port>|<username>``."""
    return f"{server}|{username}"


class Keychain:
    """Device tokens in one keyring backend. Nothing here raises: a failing backend is logged
    and reads as "no token" (``get``) or "not stored" (``set`` returns False)."""

    def __init__(self, backend: KeyringBackend) -> None:
        self.backend = backend

    def get(self, name: str) -> Optional[str]:
        """The token stored for account ``name``, or None (none stored, or the keyring failed)."""
        try:
            return self.backend.get_password(SERVICE, name)
        except Exception as exc:  # any backend error (locked, D-Bus gone, ...): the Login window asks
            log.warning("could not read the device token from the keyring (%s): %s", self.backend, exc)
            return None

    def set(self, name: str, token: str) -> bool:
        """Store the token; False (logged) when the keyring refused, so the caller keeps it elsewhere."""
        try:
            self.backend.set_password(SERVICE, name, token)
        except Exception as exc:
            log.warning("could not store the device token in the keyring (%s): %s; keeping it in the "
                        "private file instead", self.backend, exc)
            return False
        return True

    def delete(self, name: str) -> None:
        """Remove the token if there is one (a missing one is not an error; a failure is logged)."""
        try:
            self.backend.delete_password(SERVICE, name)
        except PasswordDeleteError:
            pass  # nothing stored under that name
        except Exception as exc:
            log.warning("could not remove the device token from the keyring (%s): %s", self.backend, exc)
