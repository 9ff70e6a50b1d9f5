"""Device tokens: a login with the password may ask for a token for a named device, and later
logins present the token instead, costing no password hash.

A token is 256 random bits shown to the client once; the server keeps only its SHA-256 (a
fast hash is right for a random secret: there is nothing to guess), with the device's name,
when it was made and last used, and from where. A token unused for ``ttl`` seconds expires.
Revoked tokens keep their row (without the power to log in) for ``ttl`` seconds, so the
client presenting one is told why it no longer works.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Protocol

from chatcore_auth.names import name_key

Clock = Callable[[], float]
DEVICE_MAX = 64  # characters of a device name
SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (
    token_hash   TEXT PRIMARY KEY,   -- SHA-256 of the token, hex
    name_key     TEXT NOT NULL,      -- the user, casefolded
    device       TEXT NOT NULL,      -- the name the client gave the device
    created      REAL NOT NULL,      -- Unix time
    last_used    REAL NOT NULL,
    last_address TEXT NOT NULL,
    revoked      REAL,               -- Unix time it stopped working, NULL while valid
    why          TEXT NOT NULL DEFAULT ''  -- revoked, password_changed, logged_out, replaced
);
CREATE INDEX IF NOT EXISTS devices_by_user ON devices (name_key, device);
"""
WHY_TEXT = {
    "revoked": "This device was signed out (its token was revoked)",
    "password_changed": "The password was changed since this device logged in",
    "logged_out": "The user logged out everywhere",
    "replaced": "This device logged in again and got a new token",
}


@dataclass(frozen=True)
class Device:
    """One device's valid token, as the user's device list shows it."""

    device: str
    created: float
    last_used: float
    last_address: str


@dataclass(frozen=True)
class TokenCheck:
    """What presenting a token found: the device it logs in as, or why it does not."""

    device: Optional[str] = None
    refusal: str = ""


def device_problem(device: object) -> Optional[str]:
    """Why ``device`` cannot name a device, or None."""
    if not isinstance(device, str) or not device.strip():
        return "field 'device' must be a non-empty name"
    if len(device) > DEVICE_MAX:
        return f"field 'device' must be at most {DEVICE_MAX} characters"
    if not device.isprintable():
        return "field 'device' must be printable text"
    return None


def digest(token: str) -> str:
    """What is stored of a token: its SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_token() -> str:
    """A fresh token: 256 random bits, URL-safe text."""
    return secrets.token_urlsafe(32)


def refusal_for(row: Optional[tuple[Any, ...]], now: float, ttl: float) -> Optional[str]:
    """Why the stored token ``row`` (device, last_used, revoked, why) cannot log in, or None."""
    if row is None:
        return "This token is not valid: log in with your password."
    _, last_used, revoked, why = row
    if revoked is not None:
        return f"{WHY_TEXT.get(why, 'This token was revoked')}: log in with your password."
    if last_used < now - ttl:
        return "This device's token expired after a long time unused: log in with your password."
    return None


class TokenStore(Protocol):
    """What the plugin needs of a device-token store (SQLite here, PostgreSQL in ``pg_store``)."""

    ttl: float

    def issue(self, username: str, device: str, address: str) -> str: ...
    def check(self, username: str, token: str, address: str) -> TokenCheck: ...
    def devices(self, username: str) -> list[Device]: ...
    def revoke(self, username: str, device: Optional[str] = None, why: str = "revoked") -> int: ...
    def forget_user(self, username: str) -> None: ...
    def close(self) -> None: ...


class DeviceTokens:
    """The ``devices`` table beside the accounts (``accounts.db``, WAL); thread-safe."""

    def __init__(self, path: Path, ttl: float, clock: Clock = time.time) -> None:
        self.ttl, self._clock = ttl, clock
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), timeout=10.0, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # as the accounts: a crash may lose a last-used time, no more
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def issue(self, username: str, device: str, address: str) -> str:
        """A new token for ``device`` of ``username``; an earlier token of that device stops working."""
        token = new_token()
        now = self._clock()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("UPDATE devices SET revoked = ?, why = 'replaced' WHERE name_key = ? AND device = ?"
                             " AND revoked IS NULL", (now, name_key(username), device))
            self._db.execute("INSERT INTO devices (token_hash, name_key, device, created, last_used, last_address)"
                             " VALUES (?, ?, ?, ?, ?, ?)", (digest(token), name_key(username), device, now, now,
                                                            address))
            self._forget_old(now)
            self._db.execute("COMMIT")
        return token

    def check(self, username: str, token: str, address: str) -> TokenCheck:
        """The device ``token`` logs ``username`` in as (and it is marked used), or why not."""
        now = self._clock()
        with self._lock:
            row = self._db.execute("SELECT device, last_used, revoked, why FROM devices WHERE token_hash = ?"
                                   " AND name_key = ?", (digest(token), name_key(username))).fetchone()
            refusal = refusal_for(row, now, self.ttl)
            if refusal is not None:
                return TokenCheck(refusal=refusal)
            assert row is not None
            device = row[0]
            self._db.execute("UPDATE devices SET last_used = ?, last_address = ? WHERE token_hash = ?",
                             (now, address, digest(token)))
        return TokenCheck(device=str(device))

    def devices(self, username: str) -> list[Device]:
        """The user's devices with a valid token, most recently used first."""
        cutoff = self._clock() - self.ttl
        with self._lock:
            rows = self._db.execute("SELECT device, created, last_used, last_address FROM devices WHERE name_key = ?"
                                    " AND revoked IS NULL AND last_used >= ? ORDER BY last_used DESC",
                                    (name_key(username), cutoff)).fetchall()
        return [Device(str(d), float(c), float(u), str(a)) for d, c, u, a in rows]

    def revoke(self, username: str, device: Optional[str] = None, why: str = "revoked") -> int:
        """Stop the token of ``device`` (every device when None) from logging in; how many stopped."""
        now = self._clock()
        with self._lock:
            if device is None:
                cursor = self._db.execute("UPDATE devices SET revoked = ?, why = ? WHERE name_key = ?"
                                          " AND revoked IS NULL", (now, why, name_key(username)))
            else:
                cursor = self._db.execute("UPDATE devices SET revoked = ?, why = ? WHERE name_key = ? AND device = ?"
                                          " AND revoked IS NULL", (now, why, name_key(username), device))
        return cursor.rowcount

    def forget_user(self, username: str) -> None:
        """Delete every row of a removed user: the name's next owner starts with no devices."""
        with self._lock:
            self._db.execute("DELETE FROM devices WHERE name_key = ?", (name_key(username),))

    def _forget_old(self, now: float) -> None:
        """Drop rows that can no longer matter: revoked more than a TTL ago, or unused for two
        (until then, presenting one still says why it fails). Lock held."""
        self._db.execute("DELETE FROM devices WHERE (revoked IS NOT NULL AND revoked < ?) OR last_used < ?",
                         (now - self.ttl, now - 2 * self.ttl))
